"""``torch.library`` registration of the window-attention kernels, autograd, and the public function."""
from __future__ import annotations

from typing import Optional, Tuple

import torch

from .._common import define_op, fx_leaf
from ..dispatch import choose_backend, register_triton_limits
from .launcher import launch_backward, launch_forward, triton_unsupported_reason
from .reference import check_arguments, window_attention_reference, window_bias


register_triton_limits("window_attention", triton_unsupported_reason)  # window_size, head_dim


@define_op("window_attention")
def window_attention_op(qkv: torch.Tensor, bias: torch.Tensor, window_size: int, shift_size: int,
                        scale: float) -> torch.Tensor:
    """``torch.ops.plugattn.window_attention``: (B, H, W, 3C) qkv, dense (heads, N, N) bias -> (B, H, W, C)."""
    return launch_forward(qkv, bias, window_size, shift_size, scale)


@define_op("window_attention_backward")
def window_attention_backward_op(grad: torch.Tensor, qkv: torch.Tensor, bias: torch.Tensor, window_size: int,
                                 shift_size: int, scale: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """``torch.ops.plugattn.window_attention_backward``: (∂qkv, ∂bias) from ∂out."""
    return launch_backward(grad, qkv, bias, window_size, shift_size, scale)


@window_attention_op.register_fake
def _forward_fake(qkv, bias, window_size, shift_size, scale):
    return qkv.new_empty(qkv.shape[:3] + (qkv.shape[3] // 3,))


@window_attention_backward_op.register_fake
def _backward_fake(grad, qkv, bias, window_size, shift_size, scale):
    return qkv.new_empty(qkv.shape), bias.new_empty(bias.shape)


def _setup_context(ctx, inputs, output) -> None:
    qkv, bias, window_size, shift_size, scale = inputs
    ctx.save_for_backward(qkv, bias)
    ctx.window_size, ctx.shift_size, ctx.scale = window_size, shift_size, scale


def _autograd_backward(ctx, grad: torch.Tensor):
    qkv, bias = ctx.saved_tensors
    dqkv, dbias = window_attention_backward_op(grad, qkv, bias, ctx.window_size, ctx.shift_size, ctx.scale)
    return dqkv, dbias, None, None, None


window_attention_op.register_autograd(_autograd_backward, setup_context=_setup_context)


def window_attention(
    qkv: torch.Tensor,
    rel_pos_bias: torch.Tensor,
    window_size: int,
    shift_size: int = 0,
    scale: Optional[float] = None,
    backend: Optional[str] = None,
) -> torch.Tensor:
    """Swin (shifted) window attention on the packed qkv of a channels-last map, fused on the Triton path.

    Args:
        qkv: (B, H, W, 3·C), a Swin block's ``qkv(x)`` (timm's (3, heads, head_dim) channel order,
            any strides). H, W need not be multiples of ``window_size`` (timm's zero padding).
        rel_pos_bias: the ((2T − 1)², heads) relative position bias table B̂ for a window T >=
            ``window_size`` (heads = its columns; a smaller window uses the table's centre).
        window_size: M, the window side (Triton: M <= 12, head_dim <= 64, else PyTorch under "auto").
        shift_size: cyclic shift s, 0 <= s < M; s > 0 applies the −100 SW-MSA mask.
        scale: logit scale, default head_dim ** −0.5.
        backend: ``"auto"`` / ``"triton"`` / ``"torch"`` (default: the process setting).

    Returns:
        (B, H, W, C) in qkv's dtype (contiguous on the Triton path), ready for the output projection.
        Under ``torch.fx.symbolic_trace`` the call is recorded as one node.

    Example:
        >>> qkv = torch.randn(2, 7, 7, 3 * 96)
        >>> window_attention(qkv, torch.zeros(169, 3), window_size=7, shift_size=3).shape
        torch.Size([2, 7, 7, 96])
    """
    traced = fx_leaf(window_attention, (qkv, rel_pos_bias, window_size),
                     {"shift_size": shift_size, "scale": scale, "backend": backend})
    if traced is not None:
        return traced
    check_arguments(qkv, rel_pos_bias, window_size, shift_size)
    head_dim = qkv.shape[-1] // (3 * rel_pos_bias.shape[1])
    scale = head_dim ** -0.5 if scale is None else float(scale)
    chosen = choose_backend("window_attention", qkv, backend, window_size=window_size, head_dim=head_dim)
    if chosen.backend == "triton":
        # the dense fp32 bias, gathered from the table once per call; autograd sums ∂B back into the
        # table in fp32 and rounds once to its dtype
        return window_attention_op(qkv, window_bias(rel_pos_bias.float(), window_size), window_size, shift_size, scale)
    return window_attention_reference(qkv, rel_pos_bias, window_size, shift_size, scale)
