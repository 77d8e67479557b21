"""Squeeze-and-Excitation with Triton squeeze/scale kernels, forward and backward, and the PyTorch
reference they must equal.

Paper: Hu, Shen, Sun, "Squeeze-and-Excitation Networks", CVPR 2018 (Eq. 2-4). With m = mean_hw(x)::

    h = act(W1 m + b1)   (hidden,)      s = gate(W2 h + b2)   (C,)      y = x · s

act ∈ {relu, silu}, gate ∈ {sigmoid, hardsigmoid}; W1 is (hidden, C) or the (hidden, C, 1, 1) weight
of the 1×1 conv ``fc1`` (W2 likewise), b1/b2 may be ``None``. With a per-channel ``gamma`` (C,) the
op computes ``x + gamma · (y − x)`` in the same pass: the scale becomes s' = 1 + gamma (s − 1).

What runs where, and why. The excitation is a pair of tiny matrix-vector products per image
(C ≤ 2048, hidden ≤ 512: at most ~2 MFLOP per image, (N, C) values in and out), so it runs as
ordinary fp32 torch matmuls between two Triton streaming kernels (:mod:`._common`):

* forward: ``channel_sums`` (split over H·W: partial sums per (split, n, c), added in a fixed
  order) → excitation on (N, C) → ``channel_scale`` (one program per tile).
* backward: ``channel_sums`` over x and g (Σx for m, Σg·x for ∂s) → the excitation's backward on
  (N, C) / (N, hidden) by hand (formulas below) → ``channel_scale`` computing dx = g·s' + ∂m / HW.

Byte model (B = N·C·H·W · element size; what ``launch_plan("se", ...)`` reports per launch):
forward 3B (sums read B, scale reads B and writes B), backward 4B (sums read x and g, scale reads g
and writes dx), plus (splits + 1)·N·C·4 bytes of fp32 partials and scales. The scale pass's read is
counted as an L2 hit when the tensor fits in half the device's L2 (``DeviceSpec.l2_bytes``).
A single fused kernel cannot save a read here: the scale needs every pixel of the image pooled first.

Backward of the excitation (δ = ∂L/∂(W2 h + b2), ε = ∂L/∂(W1 m + b1), Σgx = Σ_hw g·x)::

    δ = gamma · Σgx · gate'(·)    ∂W2 = δᵀ h    ∂b2 = Σ_n δ       ∂gamma = Σ_n Σgx · (s − 1)
    ε = (δ W2) · act'(·)          ∂W1 = εᵀ m    ∂b1 = Σ_n ε    ∂m = ε W1    ∂x = g·s' + ∂m / HW

No input is copied: the two Triton kernels read any strides (channels_last included) in place.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from .._validate import check_choice
from ._common import (
    channel_scale, channel_sums, check_gamma, check_nchw, check_same_dtype, define_op, fx_leaf, gated_scale,
    plan_squeeze_and_scale,
)
from .dispatch import choose_backend
from .plan import register_planner

ACTIVATIONS = ("relu", "silu")
GATES = ("sigmoid", "hardsigmoid")


# ----------------------------------------------------------------------------- reference
def _activation(name: str, u: torch.Tensor) -> torch.Tensor:
    return F.relu(u) if name == "relu" else F.silu(u)


def _gate(name: str, u: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(u) if name == "sigmoid" else F.hardsigmoid(u)


def se_reference(
    x: torch.Tensor,
    w1: torch.Tensor,
    b1: Optional[torch.Tensor],
    w2: torch.Tensor,
    b2: Optional[torch.Tensor],
    act: str = "relu",
    gate: str = "sigmoid",
    gamma: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Plain differentiable PyTorch SE (any dtype/device; float64 gradcheck runs on it); with
    ``gamma`` (C,), ``x + gamma * (se(x) - x)``.

    Example:
        >>> x = torch.randn(2, 8, 3, 3)
        >>> se_reference(x, torch.randn(2, 8), None, torch.randn(8, 2), None).shape
        torch.Size([2, 8, 3, 3])
    """
    pooled = x.mean(dim=(2, 3))  # (N, C, H, W) -> (N, C)
    hidden = _activation(act, F.linear(pooled, w1.reshape(w1.shape[0], -1), b1))  # (N, hidden)
    scale = _gate(gate, F.linear(hidden, w2.reshape(w2.shape[0], -1), b2))  # (N, C)
    y = x * scale[:, :, None, None]
    return y if gamma is None else x - (0.0 - gamma[None, :, None, None] * (y - x))  # x + change, keeping -0.0 where change is 0


# ----------------------------------------------------------------------------- excitation (fp32)
def _excite(pooled: torch.Tensor, w1, b1, w2, b2, act: str, gate: str):
    """(N, C) fp32 means -> (pre-activation, hidden, pre-gate, scale), all fp32."""
    hidden_pre = F.linear(pooled, w1.reshape(w1.shape[0], -1).float(), None if b1 is None else b1.float())
    hidden = _activation(act, hidden_pre)  # (N, hidden)
    gate_pre = F.linear(hidden, w2.reshape(w2.shape[0], -1).float(), None if b2 is None else b2.float())
    return hidden_pre, hidden, gate_pre, _gate(gate, gate_pre)  # ..., (N, C)


def _activation_grad(name: str, u: torch.Tensor) -> torch.Tensor:
    """d act(u) / du."""
    if name == "relu":
        return (u > 0).to(u.dtype)
    sig = torch.sigmoid(u)
    return sig * (1 + u * (1 - sig))


def _gate_grad(name: str, u: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """d gate(u) / du given s = gate(u); hardsigmoid's slope is 1/6 strictly inside (−3, 3), as in torch."""
    if name == "sigmoid":
        return s * (1 - s)
    return ((u > -3) & (u < 3)).to(u.dtype) / 6


# ----------------------------------------------------------------------------- launch plan
# forward: squeeze (split reduction), scale; backward: sums of x and g·x, scale with shift
plan_se = register_planner("se")(plan_squeeze_and_scale)


# ----------------------------------------------------------------------------- Triton path
def _se_forward(x, w1, b1, w2, b2, gamma, act: str, gate: str) -> torch.Tensor:
    sum_x, _ = channel_sums(x)  # pass 1 over x
    pooled = sum_x / (x.shape[2] * x.shape[3])  # (N, C); 0 / 0 = NaN on empty maps, as x.mean
    scale = _excite(pooled, w1, b1, w2, b2, act, gate)[3]
    return channel_scale(x, gated_scale(scale, gamma))  # pass 2 over x, the write of y


def _se_backward(grad, x, w1, b1, w2, b2, gamma, act: str, gate: str):
    hw = x.shape[2] * x.shape[3]
    sum_x, sum_gx = channel_sums(x, grad)  # one pass over x and grad
    pooled = sum_x / hw
    hidden_pre, hidden, gate_pre, scale = _excite(pooled, w1, b1, w2, b2, act, gate)
    w1_2d = w1.reshape(w1.shape[0], -1).float()
    w2_2d = w2.reshape(w2.shape[0], -1).float()
    # Σ_n Σ_hw g·x·(s − 1); on empty maps 0, as the reference (whose s is NaN there)
    grad_gamma = (sum_gx * (scale - 1.0)).sum(0) if hw > 0 else sum_gx.sum(0)  # (C,)
    grad_scale = sum_gx if gamma is None else sum_gx * gamma.float()[None, :]
    grad_gate_pre = grad_scale * _gate_grad(gate, gate_pre, scale)  # (N, C)
    grad_w2 = grad_gate_pre.t() @ hidden  # (C, hidden)
    grad_hidden_pre = (grad_gate_pre @ w2_2d) * _activation_grad(act, hidden_pre)  # (N, hidden)
    grad_w1 = grad_hidden_pre.t() @ pooled  # (hidden, C)
    grad_pooled = grad_hidden_pre @ w1_2d  # (N, C)
    grad_x = channel_scale(grad, gated_scale(scale, gamma), grad_pooled / hw)  # dx = g·s' + ∂m / HW
    grad_b1 = grad_hidden_pre.sum(0).to(w1.dtype)
    grad_b2 = grad_gate_pre.sum(0).to(w2.dtype)
    grad_gamma = grad_gamma.to(gamma.dtype if gamma is not None else x.dtype)
    return (grad_x, grad_w1.reshape(w1.shape).to(w1.dtype), grad_b1, grad_w2.reshape(w2.shape).to(w2.dtype),
            grad_b2, grad_gamma)


# ----------------------------------------------------------------------------- custom ops + autograd
@define_op("se")
def se_op(
    x: torch.Tensor, w1: torch.Tensor, b1: Optional[torch.Tensor], w2: torch.Tensor, b2: Optional[torch.Tensor],
    gamma: Optional[torch.Tensor], act: str, gate: str,
) -> torch.Tensor:
    """``torch.ops.plugattn.se``: Triton squeeze, fp32 excitation, Triton scale."""
    return _se_forward(x, w1, b1, w2, b2, gamma, act, gate)


@define_op("se_backward")
def se_backward_op(
    grad: torch.Tensor, x: torch.Tensor, w1: torch.Tensor, b1: Optional[torch.Tensor], w2: torch.Tensor,
    b2: Optional[torch.Tensor], gamma: Optional[torch.Tensor], act: str, gate: str,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``torch.ops.plugattn.se_backward``: (∂x, ∂w1, ∂b1, ∂w2, ∂b2, ∂gamma); ∂b* and ∂gamma are
    computed even when the bias / gamma is ``None`` (then they are simply dropped)."""
    return _se_backward(grad, x, w1, b1, w2, b2, gamma, act, gate)


@se_op.register_fake
def _se_fake(x, w1, b1, w2, b2, gamma, act, gate):
    return torch.empty_like(x)


@se_backward_op.register_fake
def _se_backward_fake(grad, x, w1, b1, w2, b2, gamma, act, gate):
    grad_b1 = w1.new_empty((w1.shape[0],))
    grad_b2 = w2.new_empty((w2.shape[0],))
    grad_gamma = (gamma if gamma is not None else x).new_empty((x.shape[1],))
    # dx is written by channel_scale over grad, so it takes grad's layout
    return torch.empty_like(grad), torch.empty_like(w1), grad_b1, torch.empty_like(w2), grad_b2, grad_gamma


def _se_setup_context(ctx, inputs, output) -> None:
    x, w1, b1, w2, b2, gamma, act, gate = inputs
    ctx.save_for_backward(x, w1, b1, w2, b2, gamma)
    ctx.act, ctx.gate = act, gate


def _se_autograd_backward(ctx, grad: torch.Tensor):
    x, w1, b1, w2, b2, gamma = ctx.saved_tensors
    grads = se_backward_op(grad, x, w1, b1, w2, b2, gamma, ctx.act, ctx.gate)
    grad_x, grad_w1, grad_b1, grad_w2, grad_b2, grad_gamma = grads
    return (grad_x, grad_w1, grad_b1 if b1 is not None else None, grad_w2, grad_b2 if b2 is not None else None,
            grad_gamma if gamma is not None else None, None, None)


se_op.register_autograd(_se_autograd_backward, setup_context=_se_setup_context)


# ----------------------------------------------------------------------------- functional API
def _check_se_weights(x: torch.Tensor, w1, b1, w2, b2) -> None:
    channels = x.shape[1]
    hidden = w1.shape[0]
    if w1.dim() not in (2, 4) or w1.numel() != hidden * channels:
        raise ValueError(f"se: w1 must be (hidden, C={channels}) or (hidden, C, 1, 1), got shape {tuple(w1.shape)}")
    if w2.dim() not in (2, 4) or w2.shape[0] != channels or w2.numel() != hidden * channels:
        raise ValueError(f"se: w2 must be (C={channels}, hidden={hidden}) or (C, hidden, 1, 1), got shape {tuple(w2.shape)}")
    if b1 is not None and tuple(b1.shape) != (hidden,):
        raise ValueError(f"se: b1 must have shape ({hidden},) or be None, got shape {tuple(b1.shape)}")
    if b2 is not None and tuple(b2.shape) != (channels,):
        raise ValueError(f"se: b2 must have shape ({channels},) or be None, got shape {tuple(b2.shape)}")


def se(
    x: torch.Tensor,
    w1: torch.Tensor,
    b1: Optional[torch.Tensor],
    w2: torch.Tensor,
    b2: Optional[torch.Tensor],
    act: str = "relu",
    gate: str = "sigmoid",
    backend: Optional[str] = None,
    *,
    gamma: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Squeeze-and-Excitation on (N, C, H, W) ``x``: Triton kernels or the PyTorch reference.

    ``backend``: ``"auto"`` / ``"triton"`` / ``"torch"``, or ``None`` for the process default.
    ``gamma``: optional per-channel (C,) gate; the result is then ``x + gamma * (se(x) - x)``,
    computed in the same kernels (``gamma = 0`` is the identity).

    Example:
        >>> x = torch.randn(2, 8, 4, 4)
        >>> se(x, torch.randn(2, 8), torch.zeros(2), torch.randn(8, 2), torch.zeros(8), backend="torch").shape
        torch.Size([2, 8, 4, 4])
    """
    traced = fx_leaf(se, (x, w1, b1, w2, b2), {"act": act, "gate": gate, "backend": backend, "gamma": gamma})
    if traced is not None:
        return traced
    check_nchw("se", x)
    check_choice("act", act, ACTIVATIONS)
    check_choice("gate", gate, GATES)
    _check_se_weights(x, w1, b1, w2, b2)
    check_gamma("se", x, gamma)
    check_same_dtype("se", x, w1=w1, b1=b1, w2=w2, b2=b2, gamma=gamma)
    if choose_backend("se", x, backend).backend == "triton":
        return se_op(x, w1, b1, w2, b2, gamma, act, gate)
    return se_reference(x, w1, b1, w2, b2, act, gate, gamma)
