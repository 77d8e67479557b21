"""SimAM as Triton kernels, forward and backward, with the PyTorch reference they must equal.

Paper: Yang, Zhang, Li, Xie, "SimAM: A Simple, Parameter-Free Attention Module for CNNs", ICML 2021.
Per channel plane of x with mean μ over its H·W values and n = max(H·W − 1, 1)::

    d = (x − μ)²,   v = Σ d / n,   z = d / (4 (v + λ)) + 0.5,   y = x · sigmoid(z)

With a per-channel ``gamma`` (C,) the op computes ``x + gamma · (y − x)`` in the same kernels.
Backward (g = ∂L/∂y, ĝ = gamma·g (g without gamma), s = sigmoid(z), e = x − μ, r = 1 / (v + λ),
gz = ĝ·x·s·(1 − s))::

    ∂L/∂d_i = gz_i · r / 4 − r² · Σ(gz·d) / (4 n)                              (direct + through v)
    ∂L/∂x_i = (1 − gamma) g_i + ĝ_i·s_i + 2 e_i ∂L/∂d_i − (2 / HW) Σ_j e_j ∂L/∂d_j  (+ through d and μ)
    ∂L/∂gamma = Σ_n Σ_hw g·x·(s − 1)

Two paths, chosen by the launch plan (``launch_plan("simam", ...)``):

* **plane** (fused): a program holds whole planes in registers (H·W ≤ ``MAX_REGISTER_HW`` and at
  most :data:`~._common.TILE_ELEMENTS`-ish values), taken when those programs fill the GPU (at
  least min(2·SMs, elements / 4096)) and, channels-last, when 8 or more channels share a tile (so
  loads along C coalesce). Bytes: forward 2B (read x, write y), backward 3B (read x and g, write dx).
* **split**: large planes, or too few planes to fill the GPU. Forward: per-(split, n, c) partial
  Welford statistics over a share of H·W, merged exactly on (N, C) (Chan's formula, no
  cancellation), then one program per tile writes y. Backward: the statistics again, a split
  reduction of Σgz·d, Σgz·e, Σe (and Σg·x(s−1) for gamma), then one program per tile writes dx.
  Bytes: forward 3B, backward 6B (B, 2B, 3B), plus fp32 partials; each re-read of x counted as an L2
  hit when the tensor fits in half of ``DeviceSpec.l2_bytes``.

B = N·C·H·W · element size. No input is ever copied: contiguous, channels_last and arbitrary strides
are read in place.
"""
from __future__ import annotations

import math
from typing import List, Optional, Tuple

import torch

from ._common import (
    TILE_ELEMENTS, check_gamma, check_nchw, check_same_dtype, define_op, dense_needs_int64, device_spec,
    empty_output, feature_map_strides, fx_leaf, is_channels_last, launch_planned, load_tile, needs_int64,
    plane_program, reduction_splits, split_program, split_range, store_tile, stream_tile, tile_program, tl, triton,
)
from .dispatch import choose_backend
from .plan import Launch, cdiv, pow2_bucket, register_planner, size_hint, sym_max, sym_min

MAX_REGISTER_HW = 4096


# ----------------------------------------------------------------------------- reference
def simam_reference(x: torch.Tensor, e_lambda: float = 1e-4, gamma: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Plain differentiable PyTorch SimAM (any dtype/device; float64 gradcheck runs on it); with
    ``gamma`` (C,), ``x + gamma * (simam(x) - x)``.

    Example:
        >>> simam_reference(torch.randn(1, 2, 3, 3)).shape
        torch.Size([1, 2, 3, 3])
    """
    neighbours = max(x.shape[-2] * x.shape[-1] - 1, 1)
    d = (x - x.mean(dim=(2, 3), keepdim=True)).pow(2)  # (N, C, H, W)
    variance = d.sum(dim=(2, 3), keepdim=True) / neighbours  # (N, C, 1, 1)
    y = x * torch.sigmoid(d / (4 * (variance + e_lambda)) + 0.5)
    return y if gamma is None else x - (0.0 - gamma[None, :, None, None] * (y - x))  # x + change, keeping -0.0 where change is 0


# ----------------------------------------------------------------------------- Triton kernels
@triton.jit
def _load_gamma(gamma_ptr, channels, channel_ok, GATED: tl.constexpr):
    if GATED:
        return tl.load(gamma_ptr + channels, mask=channel_ok, other=0.0).to(tl.float32)
    else:
        return tl.full(channels.shape, 1.0, tl.float32)


@triton.jit
def _simam_fwd_plane_kernel(
    x_ptr, gamma_ptr, y_ptr, C, HW, W, sxn, sxc, sxh, sxw, syn, syc, syh, syw, neighbours, e_lambda,
    GATED: tl.constexpr, HW_FLAT: tl.constexpr, INT64: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr,
):
    n, channels, channel_ok, hw, mask = plane_program(C, HW, BLOCK_C, BLOCK_HW)
    x = load_tile(x_ptr, n, channels, hw, sxn, sxc, sxh, sxw, W, mask, HW_FLAT, INT64)
    mean = tl.sum(x, axis=1) / HW
    centred = tl.where(mask, x - mean[:, None], 0.0)
    d = centred * centred
    variance = tl.sum(d, axis=1) / neighbours
    s = tl.sigmoid(d / (4.0 * (variance[:, None] + e_lambda)) + 0.5)
    gamma = _load_gamma(gamma_ptr, channels, channel_ok, GATED)
    y = x + gamma[:, None] * (x * s - x) if GATED else x * s
    store_tile(y_ptr, y, n, channels, hw, syn, syc, syh, syw, W, mask, HW_FLAT, INT64)


@triton.jit
def _simam_bwd_plane_kernel(
    g_ptr, x_ptr, gamma_ptr, dx_ptr, dgamma_ptr, C, HW, W,
    sgn, sgc, sgh, sgw, sxn, sxc, sxh, sxw, sdn, sdc, sdh, sdw, neighbours, e_lambda,
    GATED: tl.constexpr, HW_FLAT: tl.constexpr, INT64: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr,
):
    n, channels, channel_ok, hw, mask = plane_program(C, HW, BLOCK_C, BLOCK_HW)
    x = load_tile(x_ptr, n, channels, hw, sxn, sxc, sxh, sxw, W, mask, HW_FLAT, INT64)
    g = load_tile(g_ptr, n, channels, hw, sgn, sgc, sgh, sgw, W, mask, HW_FLAT, INT64)
    mean = tl.sum(x, axis=1) / HW
    centred = tl.where(mask, x - mean[:, None], 0.0)
    d = centred * centred
    r = 1.0 / (tl.sum(d, axis=1) / neighbours + e_lambda)  # 1 / (v + λ), (BLOCK_C,)
    s = tl.sigmoid(d * (0.25 * r)[:, None] + 0.5)
    gamma = _load_gamma(gamma_ptr, channels, channel_ok, GATED)
    g_attn = g * gamma[:, None] if GATED else g
    gz = g_attn * x * s * (1.0 - s)  # zero outside the mask because g and x are
    sum_gz_d = tl.sum(gz * d, axis=1)
    sum_gz_e = tl.sum(gz * centred, axis=1)
    sum_e = tl.sum(centred, axis=1)
    through_v = r * r * sum_gz_d / (4.0 * neighbours)  # −∂L/∂v / n
    grad_d = gz * (0.25 * r)[:, None] - through_v[:, None]
    sum_e_grad_d = 0.25 * r * sum_gz_e - through_v * sum_e
    dx = g_attn * s + 2.0 * centred * grad_d - (2.0 / HW) * sum_e_grad_d[:, None]
    if GATED:
        dx += g * (1.0 - gamma[:, None])
        tl.store(dgamma_ptr + n * C + channels, tl.sum(g * x * (s - 1.0), axis=1), mask=channel_ok)
    store_tile(dx_ptr, dx, n, channels, hw, sdn, sdc, sdh, sdw, W, mask, HW_FLAT, INT64)


@triton.jit
def _simam_stats_kernel(
    x_ptr, mean_ptr, m2_ptr, N, C, HW, W, SPLITS, BLOCKS_PER_SPLIT, sxn, sxc, sxh, sxw,
    HW_FLAT: tl.constexpr, INT64: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr,
):
    """Per (split, n, c): mean and Σ(x − mean)² of the split's share of the plane, one streaming pass
    (Chan/Welford merge of per-chunk exact two-pass statistics, so no catastrophic cancellation)."""
    n, channel_block, split = split_program(C, N, SPLITS, BLOCK_C)
    channels = channel_block * BLOCK_C + tl.arange(0, BLOCK_C)
    channel_ok = channels < C
    count = tl.zeros((BLOCK_C,), dtype=tl.float32)
    mean = tl.zeros((BLOCK_C,), dtype=tl.float32)
    m2 = tl.zeros((BLOCK_C,), dtype=tl.float32)
    first, last = split_range(split, BLOCKS_PER_SPLIT, HW, BLOCK_HW)
    for start in range(first, last, BLOCK_HW):
        hw = start + tl.arange(0, BLOCK_HW)
        mask = channel_ok[:, None] & (hw < last)[None, :]
        x = load_tile(x_ptr, n, channels, hw, sxn, sxc, sxh, sxw, W, mask, HW_FLAT, INT64)
        chunk_count = tl.minimum(last - start, BLOCK_HW).to(tl.float32)
        chunk_mean = tl.sum(x, axis=1) / chunk_count
        centred = tl.where(mask, x - chunk_mean[:, None], 0.0)
        chunk_m2 = tl.sum(centred * centred, axis=1)
        total = count + chunk_count
        delta = chunk_mean - mean
        mean = mean + delta * (chunk_count / total)
        m2 = m2 + chunk_m2 + delta * delta * (count * chunk_count / total)
        count = total
    out = (split * N + n) * C + channels
    tl.store(mean_ptr + out, mean, mask=channel_ok)
    tl.store(m2_ptr + out, m2, mask=channel_ok)


@triton.jit
def _simam_fwd_apply_kernel(
    x_ptr, mean_ptr, inv_4v_ptr, gamma_ptr, y_ptr, C, HW, W, sxn, sxc, sxh, sxw, syn, syc, syh, syw,
    GATED: tl.constexpr, HW_FLAT: tl.constexpr, INT64: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr,
):
    """y = x · sigmoid((x − μ)² / (4 (v + λ)) + 0.5) (gated: x + gamma (that − x)), one tile per program."""
    n, channels, hw = tile_program(C, HW, BLOCK_C, BLOCK_HW)
    channel_ok = channels < C
    per_channel = n * C + channels
    mean = tl.load(mean_ptr + per_channel, mask=channel_ok, other=0.0)
    inv_4v = tl.load(inv_4v_ptr + per_channel, mask=channel_ok, other=0.0)
    mask = channel_ok[:, None] & (hw < HW)[None, :]
    x = load_tile(x_ptr, n, channels, hw, sxn, sxc, sxh, sxw, W, mask, HW_FLAT, INT64)
    centred = x - mean[:, None]
    s = tl.sigmoid(centred * centred * inv_4v[:, None] + 0.5)
    gamma = _load_gamma(gamma_ptr, channels, channel_ok, GATED)
    y = x + gamma[:, None] * (x * s - x) if GATED else x * s
    store_tile(y_ptr, y, n, channels, hw, syn, syc, syh, syw, W, mask, HW_FLAT, INT64)


@triton.jit
def _simam_bwd_sums_kernel(
    g_ptr, x_ptr, mean_ptr, r_ptr, gamma_ptr, sums_ptr, N, C, HW, W, SPLITS, BLOCKS_PER_SPLIT,
    sgn, sgc, sgh, sgw, sxn, sxc, sxh, sxw,
    GATED: tl.constexpr, HW_FLAT: tl.constexpr, INT64: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr,
):
    """Per (split, n, c) partials of Σ gz·d, Σ gz·e, Σ e and (GATED) Σ g·x·(s − 1) into
    ``sums`` (4, SPLITS, N, C)."""
    n, channel_block, split = split_program(C, N, SPLITS, BLOCK_C)
    channels = channel_block * BLOCK_C + tl.arange(0, BLOCK_C)
    channel_ok = channels < C
    per_channel = n * C + channels
    mean = tl.load(mean_ptr + per_channel, mask=channel_ok, other=0.0)
    r = tl.load(r_ptr + per_channel, mask=channel_ok, other=0.0)
    gamma = _load_gamma(gamma_ptr, channels, channel_ok, GATED)
    acc_gz_d = tl.zeros((BLOCK_C, BLOCK_HW), dtype=tl.float32)
    acc_gz_e = tl.zeros((BLOCK_C, BLOCK_HW), dtype=tl.float32)
    acc_e = tl.zeros((BLOCK_C, BLOCK_HW), dtype=tl.float32)
    acc_gate = tl.zeros((BLOCK_C, BLOCK_HW), dtype=tl.float32)
    first, last = split_range(split, BLOCKS_PER_SPLIT, HW, BLOCK_HW)
    for start in range(first, last, BLOCK_HW):
        hw = start + tl.arange(0, BLOCK_HW)
        mask = channel_ok[:, None] & (hw < last)[None, :]
        x = load_tile(x_ptr, n, channels, hw, sxn, sxc, sxh, sxw, W, mask, HW_FLAT, INT64)
        g = load_tile(g_ptr, n, channels, hw, sgn, sgc, sgh, sgw, W, mask, HW_FLAT, INT64)
        centred = tl.where(mask, x - mean[:, None], 0.0)
        d = centred * centred
        s = tl.sigmoid(d * (0.25 * r)[:, None] + 0.5)
        g_attn = g * gamma[:, None] if GATED else g
        gz = g_attn * x * s * (1.0 - s)
        acc_gz_d += gz * d
        acc_gz_e += gz * centred
        acc_e += centred
        if GATED:
            acc_gate += g * x * (s - 1.0)
    out = (split * N + n) * C + channels
    plane = SPLITS * N * C
    tl.store(sums_ptr + out, tl.sum(acc_gz_d, axis=1), mask=channel_ok)
    tl.store(sums_ptr + plane + out, tl.sum(acc_gz_e, axis=1), mask=channel_ok)
    tl.store(sums_ptr + 2 * plane + out, tl.sum(acc_e, axis=1), mask=channel_ok)
    if GATED:
        tl.store(sums_ptr + 3 * plane + out, tl.sum(acc_gate, axis=1), mask=channel_ok)


@triton.jit
def _simam_bwd_apply_kernel(
    g_ptr, x_ptr, mean_ptr, r_ptr, through_v_ptr, sum_e_grad_d_ptr, gamma_ptr, dx_ptr, C, HW, W,
    sgn, sgc, sgh, sgw, sxn, sxc, sxh, sxw, sdn, sdc, sdh, sdw,
    GATED: tl.constexpr, HW_FLAT: tl.constexpr, INT64: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr,
):
    """dx from the per-(n, c) reductions, one tile per program."""
    n, channels, hw = tile_program(C, HW, BLOCK_C, BLOCK_HW)
    channel_ok = channels < C
    per_channel = n * C + channels
    mean = tl.load(mean_ptr + per_channel, mask=channel_ok, other=0.0)
    r = tl.load(r_ptr + per_channel, mask=channel_ok, other=0.0)
    through_v = tl.load(through_v_ptr + per_channel, mask=channel_ok, other=0.0)
    sum_e_grad_d = tl.load(sum_e_grad_d_ptr + per_channel, mask=channel_ok, other=0.0)
    gamma = _load_gamma(gamma_ptr, channels, channel_ok, GATED)
    mask = channel_ok[:, None] & (hw < HW)[None, :]
    x = load_tile(x_ptr, n, channels, hw, sxn, sxc, sxh, sxw, W, mask, HW_FLAT, INT64)
    g = load_tile(g_ptr, n, channels, hw, sgn, sgc, sgh, sgw, W, mask, HW_FLAT, INT64)
    centred = x - mean[:, None]
    d = centred * centred
    s = tl.sigmoid(d * (0.25 * r)[:, None] + 0.5)
    g_attn = g * gamma[:, None] if GATED else g
    grad_d = g_attn * x * s * (1.0 - s) * (0.25 * r)[:, None] - through_v[:, None]
    dx = g_attn * s + 2.0 * centred * grad_d - (2.0 / HW) * sum_e_grad_d[:, None]
    if GATED:
        dx += g * (1.0 - gamma[:, None])
    store_tile(dx_ptr, dx, n, channels, hw, sdn, sdc, sdh, sdw, W, mask, HW_FLAT, INT64)


# ----------------------------------------------------------------------------- launch plan
def _plane_tile(channels: int, hw: int, channels_last: bool, spec) -> Optional[Tuple[int, int, int]]:
    """(BLOCK_C, BLOCK_HW, num_warps) of the fused plane kernels, or None when the split path runs.
    Symbolic sizes guard only on their power-of-two buckets (see plan.pow2_bucket)."""
    block_hw = pow2_bucket(hw, 2 * MAX_REGISTER_HW)
    if block_hw > MAX_REGISTER_HW:
        return None
    block_c = pow2_bucket(channels, max(1, TILE_ELEMENTS // block_hw))
    if channels_last and block_c < 8:  # fewer than 8 channels per tile: strided, uncoalesced loads
        return None
    return block_c, block_hw, 4 if block_c * block_hw <= TILE_ELEMENTS else 8


def occupancy_floor(shape, spec) -> int:
    """min(2 · SMs, elements / 4096): the programs a launch must at least have to fill ``spec``."""
    n, c, h, w = shape
    return sym_min(2 * spec.sm_count, n * c * h * w // 4096)


@register_planner("simam")
def plan_simam(shape, dtype, channels_last, spec) -> List[Launch]:
    """The plane kernels when their programs fill the GPU, else the split path (see the module doc).

    Sizes may be SymInts (torch.compile with dynamic shapes): grids and split counts stay symbolic;
    the guards are the tiles' buckets, the int64 bound and the choice of path (one comparison)."""
    n, c, h, w = shape
    hw = h * w
    element = dtype.itemsize
    tensor = size_hint(n * c * hw) * element  # byte model only
    int64 = dense_needs_int64(shape)
    plane = _plane_tile(c, hw, channels_last, spec)
    if plane is not None and n * cdiv(c, plane[0]) >= occupancy_floor((n, c, h, w), spec):
        block_c, block_hw, warps = plane
        grid = (n * cdiv(c, block_c),)
        meta = {"INT64": int64, "BLOCK_C": block_c, "BLOCK_HW": block_hw}
        # the backward holds x, g and five temporaries per value: 8 warps keep it near 128 registers
        backward_warps = 8 if block_c * block_hw >= TILE_ELEMENTS else warps
        return [Launch("_simam_fwd_plane_kernel", grid, meta, warps, 2 * tensor),
                Launch("_simam_bwd_plane_kernel", grid, meta, backward_warps, 3 * tensor, phase="backward")]
    block_c, block_hw = stream_tile(c, hw, channels_last)
    channel_blocks, hw_blocks = cdiv(c, block_c), cdiv(hw, block_hw)
    splits, per_split = reduction_splits(n, channel_blocks, hw_blocks, spec.sm_count)
    reduce_grid, tile_grid = (n * channel_blocks * splits,), (n * channel_blocks * hw_blocks,)
    meta = {"INT64": int64, "BLOCK_C": block_c, "BLOCK_HW": block_hw}
    split_args = {"SPLITS": splits, "BLOCKS_PER_SPLIT": per_split}
    partials = size_hint(splits * n * c) * 4
    reread = 0 if tensor <= spec.l2_bytes // 2 else tensor  # a re-read of x: an L2 hit if x fits
    return [
        Launch("_simam_stats_kernel", reduce_grid, meta, 4, tensor + 2 * partials, split_args),
        Launch("_simam_fwd_apply_kernel", tile_grid, meta, 4, reread + tensor),
        Launch("_simam_stats_kernel", reduce_grid, meta, 4, tensor + 2 * partials, split_args, phase="backward"),
        Launch("_simam_bwd_sums_kernel", reduce_grid, meta, 4, reread + tensor + 4 * partials, split_args,
               phase="backward"),
        Launch("_simam_bwd_apply_kernel", tile_grid, meta, 4, 2 * reread + tensor, phase="backward"),
    ]


# ----------------------------------------------------------------------------- launchers
def _plan(x: torch.Tensor, phase: str) -> List[Launch]:
    return [launch for launch in plan_simam(tuple(x.shape), x.dtype, is_channels_last(x), device_spec(x))
            if launch.phase == phase]


def _merged_statistics(x: torch.Tensor, stats: Launch) -> Tuple[torch.Tensor, torch.Tensor]:
    """(mean, Σ(x − mean)²) per (n, c) from the split partials, merged exactly (Chan et al.)."""
    n, c, h, w = x.shape
    hw = h * w
    splits, per_split = stats.args["SPLITS"], stats.args["BLOCKS_PER_SPLIT"]
    block = per_split * stats.constexprs["BLOCK_HW"]
    part_mean = torch.empty((splits, n, c), device=x.device, dtype=torch.float32)
    part_m2 = torch.empty_like(part_mean)
    strides, flat = feature_map_strides(x)
    launch_planned(_simam_stats_kernel, stats, x, part_mean, part_m2, n, c, hw, w, splits, per_split, *strides,
                   HW_FLAT=flat, INT64=needs_int64(x))
    starts = torch.arange(splits, device=x.device, dtype=torch.float32) * block
    # values per split, (S, 1, 1); 0 for a split left empty (dynamic shapes). unsqueeze, not [:, None, None]:
    # indexing a fake CUDA tensor (the symbolic GPU-path test, without a GPU) calls into CUDA
    counts = torch.clamp(hw - starts, 0, block).unsqueeze(1).unsqueeze(2)
    mean = (counts * part_mean).sum(0) / hw
    m2 = part_m2.sum(0) + (counts * (part_mean - mean) ** 2).sum(0)
    return mean, m2


def _simam_forward(x: torch.Tensor, e_lambda: float, gamma: Optional[torch.Tensor]) -> torch.Tensor:
    n, c, h, w = x.shape
    y = empty_output(x)
    if x.numel() == 0:
        return y
    gamma_arg = gamma if gamma is not None else x
    neighbours = sym_max(h * w - 1, 1)
    plan = _plan(x, "forward")
    strides, flat = feature_map_strides(x, y)
    int64 = needs_int64(x, y)
    if len(plan) == 1:  # the fused plane kernel
        launch_planned(_simam_fwd_plane_kernel, plan[0], x, gamma_arg, y, c, h * w, w, *strides, neighbours,
                       e_lambda, GATED=gamma is not None, HW_FLAT=flat, INT64=int64)
        return y
    mean, m2 = _merged_statistics(x, plan[0])
    inv_4v = 1.0 / (4.0 * (m2 / neighbours + e_lambda))
    launch_planned(_simam_fwd_apply_kernel, plan[1], x, mean, inv_4v, gamma_arg, y, c, h * w, w, *strides,
                   GATED=gamma is not None, HW_FLAT=flat, INT64=int64)
    return y


def _simam_backward(grad: torch.Tensor, x: torch.Tensor, e_lambda: float, gamma: Optional[torch.Tensor]):
    n, c, h, w = x.shape
    dx = empty_output(x)
    dgamma_dtype = gamma.dtype if gamma is not None else x.dtype
    if x.numel() == 0:
        return dx, torch.zeros(c, device=x.device, dtype=dgamma_dtype)
    hw = h * w
    neighbours = sym_max(hw - 1, 1)
    gamma_arg = gamma if gamma is not None else x
    gated = gamma is not None
    plan = _plan(x, "backward")
    strides, flat = feature_map_strides(grad, x, dx)
    int64 = needs_int64(grad, x, dx)
    if len(plan) == 1:  # the fused plane kernel
        dgamma = torch.zeros((n, c), device=x.device, dtype=torch.float32)
        launch_planned(_simam_bwd_plane_kernel, plan[0], grad, x, gamma_arg, dx, dgamma, c, hw, w, *strides,
                       neighbours, e_lambda, GATED=gated, HW_FLAT=flat, INT64=int64)
        return dx, dgamma.sum(0).to(dgamma_dtype)
    stats, sums_launch, apply = plan
    mean, m2 = _merged_statistics(x, stats)
    r = 1.0 / (m2 / neighbours + e_lambda)
    splits, per_split = sums_launch.args["SPLITS"], sums_launch.args["BLOCKS_PER_SPLIT"]
    sums = torch.zeros((4, splits, n, c), device=x.device, dtype=torch.float32)
    gx_strides, gx_flat = feature_map_strides(grad, x)
    launch_planned(_simam_bwd_sums_kernel, sums_launch, grad, x, mean, r, gamma_arg, sums, n, c, hw, w,
                   splits, per_split, *gx_strides, GATED=gated, HW_FLAT=gx_flat, INT64=int64)
    sum_gz_d, sum_gz_e, sum_e, sum_gate = sums.sum(1)  # (N, C) each
    through_v = r * r * sum_gz_d / (4.0 * neighbours)
    sum_e_grad_d = 0.25 * r * sum_gz_e - through_v * sum_e
    launch_planned(_simam_bwd_apply_kernel, apply, grad, x, mean, r, through_v, sum_e_grad_d, gamma_arg, dx,
                   c, hw, w, *strides, GATED=gated, HW_FLAT=flat, INT64=int64)
    return dx, sum_gate.sum(0).to(dgamma_dtype)


# ----------------------------------------------------------------------------- custom ops + autograd
@define_op("simam")
def simam_op(x: torch.Tensor, e_lambda: float, gamma: Optional[torch.Tensor]) -> torch.Tensor:
    """``torch.ops.plugattn.simam``: the Triton forward."""
    return _simam_forward(x, e_lambda, gamma)


@define_op("simam_backward")
def simam_backward_op(
    grad: torch.Tensor, x: torch.Tensor, e_lambda: float, gamma: Optional[torch.Tensor]
) -> Tuple[torch.Tensor, torch.Tensor]:
    """``torch.ops.plugattn.simam_backward``: (∂L/∂x, ∂L/∂gamma) from ∂L/∂y, in Triton; ∂gamma is
    computed (zeros) even when gamma is ``None`` (then it is dropped)."""
    return _simam_backward(grad, x, e_lambda, gamma)


@simam_op.register_fake
def _simam_fake(x: torch.Tensor, e_lambda: float, gamma: Optional[torch.Tensor]) -> torch.Tensor:
    return torch.empty_like(x)


@simam_backward_op.register_fake
def _simam_backward_fake(grad, x, e_lambda, gamma):
    return torch.empty_like(x), (gamma if gamma is not None else x).new_empty((x.shape[1],))


def _simam_setup_context(ctx, inputs, output) -> None:
    x, e_lambda, gamma = inputs
    ctx.save_for_backward(x, gamma)
    ctx.e_lambda = e_lambda


def _simam_autograd_backward(ctx, grad: torch.Tensor):
    x, gamma = ctx.saved_tensors
    grad_x, grad_gamma = simam_backward_op(grad, x, ctx.e_lambda, gamma)
    return grad_x, None, grad_gamma if gamma is not None else None


simam_op.register_autograd(_simam_autograd_backward, setup_context=_simam_setup_context)


# ----------------------------------------------------------------------------- functional API
def check_e_lambda(e_lambda: float) -> float:
    """``e_lambda`` as a float, or ``ValueError`` unless it is a finite number > 0.

    Example:
        >>> check_e_lambda(0.0)
        Traceback (most recent call last):
        ...
        ValueError: simam: e_lambda must be a finite number > 0, got 0.0
    """
    if isinstance(e_lambda, bool) or not isinstance(e_lambda, (int, float)) or not math.isfinite(e_lambda) \
            or e_lambda <= 0:
        raise ValueError(f"simam: e_lambda must be a finite number > 0, got {e_lambda!r}")
    return float(e_lambda)


def simam(
    x: torch.Tensor, e_lambda: float = 1e-4, backend: Optional[str] = None, *, gamma: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """SimAM attention on (N, C, H, W) ``x``: Triton kernels or the PyTorch reference.

    ``backend``: ``"auto"`` / ``"triton"`` / ``"torch"``, or ``None`` for the process default
    (see :mod:`plugattn.kernels.dispatch`). ``gamma``: optional per-channel (C,) gate; the result is
    then ``x + gamma * (simam(x) - x)``, computed in the same kernels (``gamma = 0`` is the identity).

    Example:
        >>> simam(torch.randn(2, 4, 5, 5), backend="torch").shape
        torch.Size([2, 4, 5, 5])
    """
    traced = fx_leaf(simam, (x,), {"e_lambda": e_lambda, "backend": backend, "gamma": gamma})
    if traced is not None:
        return traced
    check_nchw("simam", x)
    e_lambda = check_e_lambda(e_lambda)
    check_gamma("simam", x, gamma)
    check_same_dtype("simam", x, gamma=gamma)
    if choose_backend("simam", x, backend).backend == "triton":
        return simam_op(x, e_lambda, gamma)
    return simam_reference(x, e_lambda, gamma)
