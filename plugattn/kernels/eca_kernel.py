"""ECA with Triton pooling and scale kernels, forward and backward, and the PyTorch reference they must equal.

Paper: Wang, Wu, Zhu, Li, Zuo, Hu, "ECA-Net: Efficient Channel Attention for Deep CNNs", CVPR 2020.
With m = mean_hw(x) (N, C) and the Conv1d(1, 1, k, padding=k//2, bias=False) weight w::

    a[c] = Σ_j w[j] · m[c − p + j]   (p = k // 2, zero padding)    s = sigmoid(a)    y = x · s

With a per-channel ``gamma`` (C,) the op computes ``x + gamma · (y − x)``: the scale becomes
s' = 1 + gamma (s − 1), folded into the same per-(n, c) scale. Backward (g = ∂L/∂y, Σgx = Σ_hw g·x)::

    δ[c]  = gamma[c] · Σgx[c] · s[c] (1 − s[c])        ∂L/∂w[j]   = Σ_n Σ_c δ[c] · m[c − p + j]
    ∂m[c] = Σ_j w[j] · δ[c + p − j]                    ∂L/∂x      = g · s' + ∂m / HW
    ∂L/∂gamma[c] = Σ_n Σgx[c] · (s[c] − 1)

Three steps each way, the middle one on (N, C) values only (a k-tap convolution: tiny):

* forward: ``channel_sums`` (split over H·W, partials per (split, n, c) added in a fixed order)
  → conv1d + sigmoid on the (N, C) means in fp32 → ``channel_scale`` (one program per tile).
* backward: ``channel_sums`` over x and g → δ, ∂w, ∂m on (N, C) → ``channel_scale`` writing dx.

Byte model (B = N·C·H·W · element size; ``launch_plan("eca", ...)`` reports it per launch):
forward 3B, backward 4B, plus (splits + 1)·N·C·4 bytes of fp32 partials. The scale pass's read is
counted as an L2 hit when the tensor fits in half of ``DeviceSpec.l2_bytes``.

Why not one fused kernel (the earlier design): a program owning a channel block must read its block
plus a halo of p channels twice, and the second read is only an L2 hit when all resident programs'
planes fit in L2 - at 64×256×56×56 about 128 MB are live against 50 MB, so it moved ~3.1B anyway,
launched only N·C/(64 − 2p) programs (5 at 1×256×56×56), held (64 × 64) band matrices that spilled,
and multiplied 0 · inf outside the band (one NaN spread over its whole block). The split path moves
a fixed 3B, fills the GPU at any batch size, keeps no band matrix, and puts a NaN or inf exactly
where the reference does (the convolution runs as ``F.conv1d`` on the means).

No input is copied: any strides, channels_last included, are read in place.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from ._common import (
    channel_scale, channel_sums, check_gamma, check_nchw, check_same_dtype, define_op, fx_leaf, gated_scale,
    plan_squeeze_and_scale,
)
from .dispatch import choose_backend
from .plan import register_planner


# ----------------------------------------------------------------------------- reference
def eca_reference(x: torch.Tensor, weight: torch.Tensor, gamma: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Plain differentiable PyTorch ECA (any dtype/device; float64 gradcheck runs on it); with
    ``gamma`` (C,), ``x + gamma * (eca(x) - x)``.

    Example:
        >>> eca_reference(torch.randn(2, 8, 3, 3), torch.randn(1, 1, 3)).shape
        torch.Size([2, 8, 3, 3])
    """
    kernel_size = weight.shape[-1]
    pooled = x.mean(dim=(2, 3)).unsqueeze(1)  # (N, C, H, W) -> (N, 1, C): channels are the sequence
    logits = F.conv1d(pooled, weight, padding=kernel_size // 2).squeeze(1)  # (N, C)
    y = x * torch.sigmoid(logits)[:, :, None, None]
    return y if gamma is None else x - (0.0 - gamma[None, :, None, None] * (y - x))  # x + change, keeping -0.0 where change is 0


# ----------------------------------------------------------------------------- launch plan
# forward: squeeze (split reduction), scale; backward: sums of x and g·x, scale with shift
plan_eca = register_planner("eca")(plan_squeeze_and_scale)


# ----------------------------------------------------------------------------- Triton path
def _channel_conv(pooled: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """(N, C) fp32 -> (N, C): the k-tap convolution across channels, zero padded."""
    kernel_size = weight.shape[-1]
    return F.conv1d(pooled.unsqueeze(1), weight.float(), padding=kernel_size // 2).squeeze(1)


def _eca_forward(x: torch.Tensor, weight: torch.Tensor, gamma: Optional[torch.Tensor]) -> torch.Tensor:
    sum_x, _ = channel_sums(x)  # pass 1 over x
    pooled = sum_x / (x.shape[2] * x.shape[3])  # (N, C); 0 / 0 = NaN on empty maps, as x.mean
    scale = torch.sigmoid(_channel_conv(pooled, weight))
    return channel_scale(x, gated_scale(scale, gamma))  # pass 2 over x, the write of y


def _eca_backward(grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, gamma: Optional[torch.Tensor]):
    hw = x.shape[2] * x.shape[3]
    kernel_size = weight.shape[-1]
    sum_x, sum_gx = channel_sums(x, grad)  # one pass over x and grad
    pooled = sum_x / hw
    scale = torch.sigmoid(_channel_conv(pooled, weight))  # (N, C)
    # Σ_n Σ_hw g·x·(s − 1); on empty maps 0, as the reference (whose s is NaN there)
    grad_gamma = (sum_gx * (scale - 1.0)).sum(0) if hw > 0 else sum_gx.sum(0)
    grad_scale = sum_gx if gamma is None else sum_gx * gamma.float()[None, :]
    delta = grad_scale * scale * (1.0 - scale)  # ∂L/∂a, (N, C)
    # (N, C + 2p); torch.cat, not F.pad: traced with symbolic sizes (torch.compile, dynamic shapes) F.pad
    # pins N and C to their traced values
    zeros = pooled.new_zeros(pooled.shape[0], kernel_size // 2)
    padded = torch.cat([zeros, pooled, zeros], dim=1)
    grad_weight = torch.einsum("nc,nck->k", delta, padded.unfold(1, kernel_size, 1))  # Σ δ[c] m[c - p + j]
    grad_pooled = F.conv_transpose1d(delta.unsqueeze(1), weight.float(), padding=kernel_size // 2).squeeze(1)
    grad_x = channel_scale(grad, gated_scale(scale, gamma), grad_pooled / hw)  # dx = g·s' + ∂m / HW
    grad_gamma = grad_gamma.to(gamma.dtype if gamma is not None else x.dtype)
    return grad_x, grad_weight.reshape(weight.shape).to(weight.dtype), grad_gamma


# ----------------------------------------------------------------------------- custom ops + autograd
@define_op("eca")
def eca_op(x: torch.Tensor, weight: torch.Tensor, gamma: Optional[torch.Tensor]) -> torch.Tensor:
    """``torch.ops.plugattn.eca``: Triton pooling, the channel convolution on (N, C), Triton scale."""
    return _eca_forward(x, weight, gamma)


@define_op("eca_backward")
def eca_backward_op(
    grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, gamma: Optional[torch.Tensor]
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``torch.ops.plugattn.eca_backward``: (∂L/∂x, ∂L/∂weight, ∂L/∂gamma); ∂gamma is computed
    even when gamma is ``None`` (then it is dropped)."""
    return _eca_backward(grad, x, weight, gamma)


@eca_op.register_fake
def _eca_fake(x: torch.Tensor, weight: torch.Tensor, gamma: Optional[torch.Tensor]) -> torch.Tensor:
    return torch.empty_like(x)


@eca_backward_op.register_fake
def _eca_backward_fake(grad, x, weight, gamma):
    grad_gamma = (gamma if gamma is not None else x).new_empty((x.shape[1],))
    # dx is written by channel_scale over grad, so it takes grad's layout
    return torch.empty_like(grad), torch.empty_like(weight), grad_gamma


def _eca_setup_context(ctx, inputs, output) -> None:
    ctx.save_for_backward(*inputs)


def _eca_autograd_backward(ctx, grad: torch.Tensor):
    x, weight, gamma = ctx.saved_tensors
    grad_x, grad_weight, grad_gamma = eca_backward_op(grad, x, weight, gamma)
    return grad_x, grad_weight, grad_gamma if gamma is not None else None


eca_op.register_autograd(_eca_autograd_backward, setup_context=_eca_setup_context)


# ----------------------------------------------------------------------------- functional API
def _check_eca_weight(weight: torch.Tensor) -> None:
    if weight.dim() != 3 or weight.shape[0] != 1 or weight.shape[1] != 1 or weight.shape[2] % 2 == 0:
        raise ValueError(
            f"eca: weight must be a Conv1d(1, 1, k) weight of shape (1, 1, k) with odd k, got shape {tuple(weight.shape)}"
        )


def eca(
    x: torch.Tensor, weight: torch.Tensor, backend: Optional[str] = None, *, gamma: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """ECA attention on (N, C, H, W) ``x`` with the (1, 1, k) channel-conv ``weight``.

    ``backend``: ``"auto"`` / ``"triton"`` / ``"torch"``, or ``None`` for the process default.
    ``gamma``: optional per-channel (C,) gate; the result is then ``x + gamma * (eca(x) - x)``,
    computed in the same kernels (``gamma = 0`` is the identity).

    Example:
        >>> eca(torch.randn(2, 16, 4, 4), torch.randn(1, 1, 3), backend="torch").shape
        torch.Size([2, 16, 4, 4])
    """
    traced = fx_leaf(eca, (x, weight), {"backend": backend, "gamma": gamma})
    if traced is not None:
        return traced
    check_nchw("eca", x)
    _check_eca_weight(weight)
    check_gamma("eca", x, gamma)
    check_same_dtype("eca", x, weight=weight, gamma=gamma)
    if choose_backend("eca", x, backend).backend == "triton":
        return eca_op(x, weight, gamma)
    return eca_reference(x, weight, gamma)
