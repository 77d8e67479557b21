"""SimAM as Triton kernels, forward and backward, with the PyTorch reference they must equal.

Paper: Yang, Zhang, Li, Xie, "SimAM: A Simple, Parameter-Free Attention Module for CNNs", ICML 2021.
Per channel plane of x with mean μ over its H·W values and n = max(H·W − 1, 1)::

    d = (x − μ)²,   v = Σ d / n,   z = d / (4 (v + λ)) + 0.5,   y = x · sigmoid(z)

Backward (g = ∂L/∂y, s = sigmoid(z), e = x − μ, r = 1 / (v + λ), gz = g·x·s·(1 − s))::

    ∂L/∂d_i = gz_i · r / 4 − r² · Σ(gz·d) / (4 n)               (direct + through v)
    ∂L/∂x_i = g_i·s_i + 2 e_i ∂L/∂d_i − (2 / HW) Σ_j e_j ∂L/∂d_j  (direct + through d and μ)

Kernels (one program per image and block of channels, each holding whole planes):

* register variant, H·W ≤ ``MAX_REGISTER_HW`` (3136 = 56×56 fits): the tile stays in registers,
  forward = 1 read of x + 1 write of y; backward = 1 read of x and g + 1 write of dx (the floor).
* looped variant, larger planes (and channels_last, whose planes are strided by C): forward does a
  Welford pass for μ and v, then a write pass (2 reads + 1 write); backward does Welford, a
  reduction pass over x and g, then a write pass (3 reads of x, 2 of g, 1 write).

No input is ever copied: contiguous, channels_last and arbitrary strides are read in place.
"""
from __future__ import annotations

from typing import Optional

import torch

from ._common import check_nchw, define_op, empty_output, feature_map_strides, fx_leaf, launch, load_tile, store_tile, tl, triton
from .dispatch import interpreter_enabled, resolve_backend

MAX_REGISTER_HW = 4096


# ----------------------------------------------------------------------------- reference
def simam_reference(x: torch.Tensor, e_lambda: float = 1e-4) -> torch.Tensor:
    """Plain differentiable PyTorch SimAM (any dtype/device; float64 gradcheck runs on it).

    Example:
        >>> simam_reference(torch.randn(1, 2, 3, 3)).shape
        torch.Size([1, 2, 3, 3])
    """
    neighbours = max(x.shape[-2] * x.shape[-1] - 1, 1)
    d = (x - x.mean(dim=(2, 3), keepdim=True)).pow(2)  # (N, C, H, W)
    variance = d.sum(dim=(2, 3), keepdim=True) / neighbours  # (N, C, 1, 1)
    return x * torch.sigmoid(d / (4 * (variance + e_lambda)) + 0.5)


# ----------------------------------------------------------------------------- Triton kernels
@triton.jit
def _plane_stats_looped(x_ptr, n, channels, channel_ok, HW, W, sxn, sxc, sxh, sxw, neighbours,
                        HW_FLAT: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr):
    """Mean and v = Σ(x − μ)² / n of each channel plane, one streaming pass (Chan/Welford merge of
    per-chunk exact two-pass statistics, so no catastrophic cancellation)."""
    count = tl.zeros((BLOCK_C,), dtype=tl.float32)
    mean = tl.zeros((BLOCK_C,), dtype=tl.float32)
    m2 = tl.zeros((BLOCK_C,), dtype=tl.float32)
    for start in range(0, HW, BLOCK_HW):
        hw = start + tl.arange(0, BLOCK_HW)
        hw_ok = hw < HW
        mask = channel_ok[:, None] & hw_ok[None, :]
        x = load_tile(x_ptr, n, channels, hw, sxn, sxc, sxh, sxw, W, mask, HW_FLAT)
        chunk_count = tl.minimum(HW - start, BLOCK_HW).to(tl.float32)
        chunk_mean = tl.sum(x, axis=1) / chunk_count
        centred = tl.where(mask, x - chunk_mean[:, None], 0.0)
        chunk_m2 = tl.sum(centred * centred, axis=1)
        total = count + chunk_count
        delta = chunk_mean - mean
        mean = mean + delta * (chunk_count / total)
        m2 = m2 + chunk_m2 + delta * delta * (count * chunk_count / total)
        count = total
    return mean, m2 / neighbours


@triton.jit
def _simam_fwd_register_kernel(
    x_ptr, y_ptr, C, HW, W, sxn, sxc, sxh, sxw, syn, syc, syh, syw, neighbours, e_lambda,
    HW_FLAT: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr,
):
    n = tl.program_id(0)
    channels = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    hw = tl.arange(0, BLOCK_HW)
    mask = (channels < C)[:, None] & (hw < HW)[None, :]
    x = load_tile(x_ptr, n, channels, hw, sxn, sxc, sxh, sxw, W, mask, HW_FLAT)
    mean = tl.sum(x, axis=1) / HW
    centred = tl.where(mask, x - mean[:, None], 0.0)
    d = centred * centred
    variance = tl.sum(d, axis=1) / neighbours
    z = d / (4.0 * (variance[:, None] + e_lambda)) + 0.5
    y = x * tl.sigmoid(z)
    store_tile(y_ptr, y, n, channels, hw, syn, syc, syh, syw, W, mask, HW_FLAT)


@triton.jit
def _simam_fwd_looped_kernel(
    x_ptr, y_ptr, C, HW, W, sxn, sxc, sxh, sxw, syn, syc, syh, syw, neighbours, e_lambda,
    HW_FLAT: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr,
):
    n = tl.program_id(0)
    channels = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    channel_ok = channels < C
    mean, variance = _plane_stats_looped(x_ptr, n, channels, channel_ok, HW, W, sxn, sxc, sxh, sxw, neighbours,
                                         HW_FLAT, BLOCK_C, BLOCK_HW)
    inv_4v = 1.0 / (4.0 * (variance + e_lambda))
    for start in range(0, HW, BLOCK_HW):
        hw = start + tl.arange(0, BLOCK_HW)
        mask = channel_ok[:, None] & (hw < HW)[None, :]
        x = load_tile(x_ptr, n, channels, hw, sxn, sxc, sxh, sxw, W, mask, HW_FLAT)
        centred = x - mean[:, None]
        y = x * tl.sigmoid(centred * centred * inv_4v[:, None] + 0.5)
        store_tile(y_ptr, y, n, channels, hw, syn, syc, syh, syw, W, mask, HW_FLAT)


@triton.jit
def _simam_bwd_register_kernel(
    g_ptr, x_ptr, dx_ptr, C, HW, W,
    sgn, sgc, sgh, sgw, sxn, sxc, sxh, sxw, sdn, sdc, sdh, sdw, neighbours, e_lambda,
    HW_FLAT: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr,
):
    n = tl.program_id(0)
    channels = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    hw = tl.arange(0, BLOCK_HW)
    mask = (channels < C)[:, None] & (hw < HW)[None, :]
    x = load_tile(x_ptr, n, channels, hw, sxn, sxc, sxh, sxw, W, mask, HW_FLAT)
    g = load_tile(g_ptr, n, channels, hw, sgn, sgc, sgh, sgw, W, mask, HW_FLAT)
    mean = tl.sum(x, axis=1) / HW
    centred = tl.where(mask, x - mean[:, None], 0.0)
    d = centred * centred
    r = 1.0 / (tl.sum(d, axis=1) / neighbours + e_lambda)  # 1 / (v + λ), (BLOCK_C,)
    s = tl.sigmoid(d * (0.25 * r)[:, None] + 0.5)
    gz = g * x * s * (1.0 - s)  # zero outside the mask because g and x are
    sum_gz_d = tl.sum(gz * d, axis=1)
    sum_gz_e = tl.sum(gz * centred, axis=1)
    sum_e = tl.sum(centred, axis=1)
    through_v = r * r * sum_gz_d / (4.0 * neighbours)  # −∂L/∂v / n
    grad_d = gz * (0.25 * r)[:, None] - through_v[:, None]
    sum_e_grad_d = 0.25 * r * sum_gz_e - through_v * sum_e
    dx = g * s + 2.0 * centred * grad_d - (2.0 / HW) * sum_e_grad_d[:, None]
    store_tile(dx_ptr, dx, n, channels, hw, sdn, sdc, sdh, sdw, W, mask, HW_FLAT)


@triton.jit
def _simam_bwd_looped_kernel(
    g_ptr, x_ptr, dx_ptr, C, HW, W,
    sgn, sgc, sgh, sgw, sxn, sxc, sxh, sxw, sdn, sdc, sdh, sdw, neighbours, e_lambda,
    HW_FLAT: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr,
):
    n = tl.program_id(0)
    channels = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    channel_ok = channels < C
    mean, variance = _plane_stats_looped(x_ptr, n, channels, channel_ok, HW, W, sxn, sxc, sxh, sxw, neighbours,
                                         HW_FLAT, BLOCK_C, BLOCK_HW)
    r = 1.0 / (variance + e_lambda)
    acc_gz_d = tl.zeros((BLOCK_C, BLOCK_HW), dtype=tl.float32)
    acc_gz_e = tl.zeros((BLOCK_C, BLOCK_HW), dtype=tl.float32)
    acc_e = tl.zeros((BLOCK_C, BLOCK_HW), dtype=tl.float32)
    for start in range(0, HW, BLOCK_HW):
        hw = start + tl.arange(0, BLOCK_HW)
        mask = channel_ok[:, None] & (hw < HW)[None, :]
        x = load_tile(x_ptr, n, channels, hw, sxn, sxc, sxh, sxw, W, mask, HW_FLAT)
        g = load_tile(g_ptr, n, channels, hw, sgn, sgc, sgh, sgw, W, mask, HW_FLAT)
        centred = tl.where(mask, x - mean[:, None], 0.0)
        d = centred * centred
        s = tl.sigmoid(d * (0.25 * r)[:, None] + 0.5)
        gz = g * x * s * (1.0 - s)
        acc_gz_d += gz * d
        acc_gz_e += gz * centred
        acc_e += centred
    through_v = r * r * tl.sum(acc_gz_d, axis=1) / (4.0 * neighbours)
    sum_e_grad_d = 0.25 * r * tl.sum(acc_gz_e, axis=1) - through_v * tl.sum(acc_e, axis=1)
    for start in range(0, HW, BLOCK_HW):
        hw = start + tl.arange(0, BLOCK_HW)
        mask = channel_ok[:, None] & (hw < HW)[None, :]
        x = load_tile(x_ptr, n, channels, hw, sxn, sxc, sxh, sxw, W, mask, HW_FLAT)
        g = load_tile(g_ptr, n, channels, hw, sgn, sgc, sgh, sgw, W, mask, HW_FLAT)
        centred = x - mean[:, None]
        d = centred * centred
        s = tl.sigmoid(d * (0.25 * r)[:, None] + 0.5)
        grad_d = g * x * s * (1.0 - s) * (0.25 * r)[:, None] - through_v[:, None]
        dx = g * s + 2.0 * centred * grad_d - (2.0 / HW) * sum_e_grad_d[:, None]
        store_tile(dx_ptr, dx, n, channels, hw, sdn, sdc, sdh, sdw, W, mask, HW_FLAT)


# ----------------------------------------------------------------------------- launchers
def _simam_launch_config(x: torch.Tensor) -> tuple:
    """(register?, BLOCK_C, BLOCK_HW, num_warps) for a plane of H·W values."""
    hw = x.shape[2] * x.shape[3]
    channels_last = x.stride(1) == 1 and x.shape[1] > 1
    block_hw = triton.next_power_of_2(hw)
    if block_hw <= MAX_REGISTER_HW and not channels_last:
        # whole planes, about 2048 values per program (several small planes share one program)
        block_c = max(1, min(triton.next_power_of_2(x.shape[1]), 2048 // block_hw))
        return True, block_c, block_hw, 4 if block_c * block_hw <= 2048 else 8
    if channels_last:
        return False, min(32, triton.next_power_of_2(x.shape[1])), 32 if interpreter_enabled() else 64, 4
    return False, 1, 64 if interpreter_enabled() else 2048, 8


def _simam_forward(x: torch.Tensor, e_lambda: float) -> torch.Tensor:
    n, c, h, w = x.shape
    y = empty_output(x)
    strides, flat = feature_map_strides(x, y)
    register, block_c, block_hw, warps = _simam_launch_config(x)
    kernel = _simam_fwd_register_kernel if register else _simam_fwd_looped_kernel
    launch(kernel, (n, triton.cdiv(c, block_c)), x, y, c, h * w, w, *strides, max(h * w - 1, 1), e_lambda,
           HW_FLAT=flat, BLOCK_C=block_c, BLOCK_HW=block_hw, num_warps=warps)
    return y


def _simam_backward(grad: torch.Tensor, x: torch.Tensor, e_lambda: float) -> torch.Tensor:
    n, c, h, w = x.shape
    dx = empty_output(x)
    strides, flat = feature_map_strides(grad, x, dx)
    register, block_c, block_hw, warps = _simam_launch_config(x)
    kernel = _simam_bwd_register_kernel if register else _simam_bwd_looped_kernel
    launch(kernel, (n, triton.cdiv(c, block_c)), grad, x, dx, c, h * w, w, *strides, max(h * w - 1, 1), e_lambda,
           HW_FLAT=flat, BLOCK_C=block_c, BLOCK_HW=block_hw, num_warps=warps)
    return dx


# ----------------------------------------------------------------------------- custom ops + autograd
@define_op("simam")
def simam_op(x: torch.Tensor, e_lambda: float) -> torch.Tensor:
    """``torch.ops.plugattn.simam``: the Triton forward."""
    return _simam_forward(x, e_lambda)


@define_op("simam_backward")
def simam_backward_op(grad: torch.Tensor, x: torch.Tensor, e_lambda: float) -> torch.Tensor:
    """``torch.ops.plugattn.simam_backward``: ∂L/∂x from ∂L/∂y, in Triton."""
    return _simam_backward(grad, x, e_lambda)


@simam_op.register_fake
def _simam_fake(x: torch.Tensor, e_lambda: float) -> torch.Tensor:
    return torch.empty_like(x)


@simam_backward_op.register_fake
def _simam_backward_fake(grad: torch.Tensor, x: torch.Tensor, e_lambda: float) -> torch.Tensor:
    return torch.empty_like(x)


def _simam_setup_context(ctx, inputs, output) -> None:
    x, e_lambda = inputs
    ctx.save_for_backward(x)
    ctx.e_lambda = e_lambda


def _simam_autograd_backward(ctx, grad: torch.Tensor):
    (x,) = ctx.saved_tensors
    return simam_backward_op(grad, x, ctx.e_lambda), None


simam_op.register_autograd(_simam_autograd_backward, setup_context=_simam_setup_context)


# ----------------------------------------------------------------------------- functional API
def simam(x: torch.Tensor, e_lambda: float = 1e-4, backend: Optional[str] = None) -> torch.Tensor:
    """SimAM attention on (N, C, H, W) ``x``: Triton kernels or the PyTorch reference.

    ``backend``: ``"auto"`` / ``"triton"`` / ``"torch"``, or ``None`` for the process default
    (see :mod:`plugattn.kernels.dispatch`).

    Example:
        >>> simam(torch.randn(2, 4, 5, 5), backend="torch").shape
        torch.Size([2, 4, 5, 5])
    """
    traced = fx_leaf(simam, (x,), {"e_lambda": e_lambda, "backend": backend})
    if traced is not None:
        return traced
    check_nchw("simam", x)
    if resolve_backend(x, backend, "simam") == "triton":
        return simam_op(x, float(e_lambda))
    return simam_reference(x, e_lambda)
