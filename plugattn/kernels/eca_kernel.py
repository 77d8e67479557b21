"""ECA as fused Triton kernels, forward and backward, with the PyTorch reference they must equal.

Paper: Wang, Wu, Zhu, Li, Zuo, Hu, "ECA-Net: Efficient Channel Attention for Deep CNNs", CVPR 2020.
With m = mean_hw(x) (N, C) and the Conv1d(1, 1, k, padding=k//2, bias=False) weight w::

    a[c] = Σ_j w[j] · m[c − p + j]   (p = k // 2, zero padding)    s = sigmoid(a)    y = x · s

Backward (g = ∂L/∂y)::

    δ[c]  = Σ_hw(g·x)[c] · s[c] (1 − s[c])        ∂L/∂w[j] = Σ_n Σ_c δ[c] · m[c − p + j]
    ∂m[c] = Σ_j w[j] · δ[c + p − j]               ∂L/∂x    = g · s + ∂m / HW

One fused kernel each way. A program owns a block of channels and also reads a halo of p channels
on each side (2p in the backward, whose ∂m needs δ, hence s, hence m, one halo further out), so it
can compute the channel convolution itself - as a small banded matrix product in registers -
without any other program's result:

* forward: pass 1 reads the block + halo to pool it, pass 2 reads the owned block again and writes
  y. The second read is of data this program has just read, so on a GPU it is mostly served by L2:
  DRAM traffic is close to one read of x (plus the halo fraction 2p / block) and one write.
* backward: pass 1 reads x and g (block + halo) for Σx and Σg·x, pass 2 reads g again and writes
  dx; ∂L/∂w is reduced per program into a tiny (N, blocks, k) buffer and summed.

No input is copied: any strides, channels_last included, are read in place.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from ._common import check_nchw, define_op, empty_output, feature_map_strides, fx_leaf, launch, load_tile, store_tile, tl, triton
from .dispatch import interpreter_enabled, resolve_backend


# ----------------------------------------------------------------------------- reference
def eca_reference(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Plain differentiable PyTorch ECA (any dtype/device; float64 gradcheck runs on it).

    Example:
        >>> eca_reference(torch.randn(2, 8, 3, 3), torch.randn(1, 1, 3)).shape
        torch.Size([2, 8, 3, 3])
    """
    kernel_size = weight.shape[-1]
    pooled = x.mean(dim=(2, 3)).unsqueeze(1)  # (N, C, H, W) -> (N, 1, C): channels are the sequence
    logits = F.conv1d(pooled, weight, padding=kernel_size // 2).squeeze(1)  # (N, C)
    return x * torch.sigmoid(logits)[:, :, None, None]


# ----------------------------------------------------------------------------- Triton kernels
@triton.jit
def _band_matrix(w_ptr, K, shift, EXT: tl.constexpr):
    """(EXT, EXT) matrix M with M[e, m] = w[m − e + shift] inside the band 0 ≤ m − e + shift < K."""
    rows = tl.arange(0, EXT)
    cols = tl.arange(0, EXT)
    tap = cols[None, :] - rows[:, None] + shift
    return tl.load(w_ptr + tap, mask=(tap >= 0) & (tap < K), other=0.0).to(tl.float32)


@triton.jit
def _eca_fwd_kernel(
    x_ptr, w_ptr, y_ptr, C, HW, W, sxn, sxc, sxh, sxw, syn, syc, syh, syw, K, HALO, OWNED,
    HW_FLAT: tl.constexpr, EXT: tl.constexpr, BLOCK_HW: tl.constexpr,
):
    n = tl.program_id(0)
    ext = tl.arange(0, EXT)  # position in [halo | owned channels | halo]
    channels = tl.program_id(1) * OWNED - HALO + ext
    in_ok = (channels >= 0) & (channels < C)  # outside [0, C) is the conv's zero padding
    acc = tl.zeros((EXT, BLOCK_HW), dtype=tl.float32)
    for start in range(0, HW, BLOCK_HW):
        hw = start + tl.arange(0, BLOCK_HW)
        mask = in_ok[:, None] & (hw < HW)[None, :]
        x = load_tile(x_ptr, n, channels, hw, sxn, sxc, sxh, sxw, W, mask, HW_FLAT)
        acc += x
    pooled = tl.sum(acc, axis=1) / HW  # (EXT,)
    # a[e] = Σ_j w[j] pooled[e − p + j]: banded matrix times the pooled vector
    logits = tl.sum(_band_matrix(w_ptr, K, HALO, EXT) * pooled[None, :], axis=1)
    scale = tl.sigmoid(logits)
    out_ok = (ext >= HALO) & (ext < HALO + OWNED) & in_ok
    for start in range(0, HW, BLOCK_HW):
        hw = start + tl.arange(0, BLOCK_HW)
        mask = out_ok[:, None] & (hw < HW)[None, :]
        x = load_tile(x_ptr, n, channels, hw, sxn, sxc, sxh, sxw, W, mask, HW_FLAT)
        y = x * scale[:, None]
        store_tile(y_ptr, y, n, channels, hw, syn, syc, syh, syw, W, mask, HW_FLAT)


@triton.jit
def _eca_bwd_kernel(
    g_ptr, x_ptr, w_ptr, dx_ptr, dw_ptr, C, HW, W,
    sgn, sgc, sgh, sgw, sxn, sxc, sxh, sxw, sdn, sdc, sdh, sdw, K, HALO, OWNED,
    HW_FLAT: tl.constexpr, EXT: tl.constexpr, BLOCK_HW: tl.constexpr,
):
    n = tl.program_id(0)
    block = tl.program_id(1)
    ext = tl.arange(0, EXT)  # [2p halo | owned channels | 2p halo]
    channels = block * OWNED - 2 * HALO + ext
    in_ok = (channels >= 0) & (channels < C)
    acc_x = tl.zeros((EXT, BLOCK_HW), dtype=tl.float32)
    acc_gx = tl.zeros((EXT, BLOCK_HW), dtype=tl.float32)
    for start in range(0, HW, BLOCK_HW):
        hw = start + tl.arange(0, BLOCK_HW)
        mask = in_ok[:, None] & (hw < HW)[None, :]
        x = load_tile(x_ptr, n, channels, hw, sxn, sxc, sxh, sxw, W, mask, HW_FLAT)
        g = load_tile(g_ptr, n, channels, hw, sgn, sgc, sgh, sgw, W, mask, HW_FLAT)
        acc_x += x
        acc_gx += g * x
    pooled = tl.sum(acc_x, axis=1) / HW
    sum_gx = tl.sum(acc_gx, axis=1)
    # s is exact where its whole window lies inside the tile: ext in [p, EXT − p)
    scale = tl.sigmoid(tl.sum(_band_matrix(w_ptr, K, HALO, EXT) * pooled[None, :], axis=1))
    delta_ok = in_ok & (ext >= HALO) & (ext < EXT - HALO)
    delta = tl.where(delta_ok, sum_gx * scale * (1.0 - scale), 0.0)
    # ∂m[e] = Σ_j w[j] δ[e + p − j]: the transposed band (M[e, m] = w[e − m + p])
    rows = tl.arange(0, EXT)
    tap_t = rows[:, None] - ext[None, :] + HALO
    band_t = tl.load(w_ptr + tap_t, mask=(tap_t >= 0) & (tap_t < K), other=0.0).to(tl.float32)
    grad_pooled = tl.sum(band_t * delta[None, :], axis=1)
    owned = (ext >= 2 * HALO) & (ext < 2 * HALO + OWNED) & in_ok
    # ∂L/∂w[j] from the owned channels: Σ_e δ[e] pooled[e − p + j], i.e. the band entries equal to j
    tap = ext[None, :] - rows[:, None] + HALO  # tap[e, m] = m − e + p
    outer = tl.where(owned, delta, 0.0)[:, None] * pooled[None, :]
    dw_base = (n.to(tl.int64) * tl.num_programs(1) + block) * K
    for j in range(0, K):
        tl.store(dw_ptr + dw_base + j, tl.sum(tl.sum(tl.where(tap == j, outer, 0.0), axis=1), axis=0))
    scale_hw = grad_pooled / HW
    for start in range(0, HW, BLOCK_HW):
        hw = start + tl.arange(0, BLOCK_HW)
        mask = owned[:, None] & (hw < HW)[None, :]
        g = load_tile(g_ptr, n, channels, hw, sgn, sgc, sgh, sgw, W, mask, HW_FLAT)
        dx = g * scale[:, None] + scale_hw[:, None]
        store_tile(dx_ptr, dx, n, channels, hw, sdn, sdc, sdh, sdw, W, mask, HW_FLAT)


# ----------------------------------------------------------------------------- launchers
MAX_EXT = 128  # channels (owned + halo) per program; tests lower it to get several blocks on tiny C


def _eca_tiles(x: torch.Tensor, halo: int) -> Tuple[int, int, int]:
    """(EXT, owned channels per program, BLOCK_HW) for a total halo of ``halo`` channels per side."""
    channels, hw = x.shape[1], x.shape[2] * x.shape[3]
    ext = 64 if 2 * halo <= 16 else 128
    ext = min(ext, MAX_EXT, triton.next_power_of_2(channels + 2 * halo))
    ext = max(triton.next_power_of_2(2 * halo + 1), ext)  # at least one owned channel
    block_hw = max(1, min(triton.next_power_of_2(hw), 4096 // ext))
    if interpreter_enabled():
        block_hw = min(block_hw, 32)
    return ext, ext - 2 * halo, block_hw


def _eca_forward(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    n, c, h, w = x.shape
    k = weight.shape[-1]
    y = empty_output(x)
    strides, flat = feature_map_strides(x, y)
    ext, owned, block_hw = _eca_tiles(x, k // 2)
    launch(_eca_fwd_kernel, (n, triton.cdiv(c, owned)), x, weight.contiguous(), y, c, h * w, w, *strides,
           k, k // 2, owned, HW_FLAT=flat, EXT=ext, BLOCK_HW=block_hw, num_warps=8 if ext > 64 else 4)
    return y


def _eca_backward(grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    n, c, h, w = x.shape
    k = weight.shape[-1]
    dx = empty_output(x)
    strides, flat = feature_map_strides(grad, x, dx)
    ext, owned, block_hw = _eca_tiles(x, 2 * (k // 2))
    blocks = triton.cdiv(c, owned)
    dw_partial = empty_output(x, (n, blocks, k), torch.float32)
    launch(_eca_bwd_kernel, (n, blocks), grad, x, weight.contiguous(), dx, dw_partial, c, h * w, w, *strides,
           k, k // 2, owned, HW_FLAT=flat, EXT=ext, BLOCK_HW=block_hw, num_warps=8 if ext > 64 else 4)
    grad_weight = dw_partial.sum(dim=(0, 1)).reshape(weight.shape).to(weight.dtype)
    return dx, grad_weight


# ----------------------------------------------------------------------------- custom ops + autograd
@define_op("eca")
def eca_op(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``torch.ops.plugattn.eca``: the fused Triton forward."""
    return _eca_forward(x, weight)


@define_op("eca_backward")
def eca_backward_op(grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """``torch.ops.plugattn.eca_backward``: (∂L/∂x, ∂L/∂weight) in one fused Triton kernel."""
    return _eca_backward(grad, x, weight)


@eca_op.register_fake
def _eca_fake(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(x)


@eca_backward_op.register_fake
def _eca_backward_fake(grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    return torch.empty_like(x), torch.empty_like(weight)


def _eca_setup_context(ctx, inputs, output) -> None:
    ctx.save_for_backward(*inputs)


def _eca_autograd_backward(ctx, grad: torch.Tensor):
    x, weight = ctx.saved_tensors
    return eca_backward_op(grad, x, weight)


eca_op.register_autograd(_eca_autograd_backward, setup_context=_eca_setup_context)


# ----------------------------------------------------------------------------- functional API
def _check_eca_weight(weight: torch.Tensor) -> None:
    if weight.dim() != 3 or weight.shape[0] != 1 or weight.shape[1] != 1 or weight.shape[2] % 2 == 0:
        raise ValueError(
            f"eca: weight must be a Conv1d(1, 1, k) weight of shape (1, 1, k) with odd k, got shape {tuple(weight.shape)}"
        )


def eca(x: torch.Tensor, weight: torch.Tensor, backend: Optional[str] = None) -> torch.Tensor:
    """ECA attention on (N, C, H, W) ``x`` with the (1, 1, k) channel-conv ``weight``.

    ``backend``: ``"auto"`` / ``"triton"`` / ``"torch"``, or ``None`` for the process default.

    Example:
        >>> eca(torch.randn(2, 16, 4, 4), torch.randn(1, 1, 3), backend="torch").shape
        torch.Size([2, 16, 4, 4])
    """
    traced = fx_leaf(eca, (x, weight), {"backend": backend})
    if traced is not None:
        return traced
    check_nchw("eca", x)
    _check_eca_weight(weight)
    if resolve_backend(x, backend, "eca") == "triton":
        return eca_op(x, weight)
    return eca_reference(x, weight)
