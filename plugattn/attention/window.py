"""Swin window attention (W-MSA / SW-MSA) as a residual plug-in for (B, C, H, W) feature maps.

Paper: Ze Liu, Yutong Lin, Yue Cao, Han Hu, Yixuan Wei, Zheng Zhang, Stephen Lin, Baining Guo,
"Swin Transformer: Hierarchical Vision Transformer using Shifted Windows", ICCV 2021.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn as nn

from .._validate import check_feature_map, check_int
from ..kernels.window_attention_kernel.op import window_attention
from .registry import register_attention

HEAD_DIM = 32  # Swin's channels per head (Swin-T: 96/3, 192/6, 384/12, 768/24)


def default_num_heads(channels: int) -> int:
    """The head count whose head dim C / heads is the divisor of C nearest Swin's 32; on a tie
    (e.g. C = 252: head dims 28 and 36) the larger head dim, i.e. fewer heads.

    Example:
        >>> default_num_heads(96), default_num_heads(112), default_num_heads(16), default_num_heads(252)
        (3, 4, 1, 7)
    """
    head_dims = [d for d in range(1, channels + 1) if channels % d == 0]
    return channels // min(head_dims, key=lambda d: (abs(d - HEAD_DIM), -d))


def map_window(height: int, width: int, window_size: int, shift_size: int) -> Tuple[int, int]:
    """(window, shift) on an H×W map: a map no larger than the window in one side makes the window
    that side and drops the shift (official Swin's rule; a square window of min(H, W)).

    Example:
        >>> map_window(56, 56, 7, 3), map_window(7, 7, 7, 3), map_window(4, 9, 7, 3)
        ((7, 3), (7, 0), (4, 0))
    """
    side = min(height, width)
    if side <= window_size:
        return max(1, side), 0
    return window_size, shift_size


def window_attention_on_map(qkv: torch.Tensor, table: torch.Tensor, window_size: int, shift_size: int,
                            scale: float) -> torch.Tensor:
    """:func:`window_attention` with the window fitted to the map by :func:`map_window`; the table of
    window M serves a smaller window through its centre. (B, H, W, 3C) -> (B, H, W, C)."""
    window, shift = map_window(qkv.shape[1], qkv.shape[2], window_size, shift_size)
    return window_attention(qkv, table, window, shift, scale)


# The window depends on the map size: under torch.fx the call stays one node.
torch.fx.wrap("window_attention_on_map")


@register_attention("window", aliases=("swin", "window_attention"), paper="Liu et al., Swin Transformer: "
                    "Hierarchical Vision Transformer using Shifted Windows", venue="ICCV", year=2021)
class WindowAttention2d(nn.Module):
    """Swin window multi-head self-attention with relative position bias, as a residual plug-in.

    Follows Liu et al. (ICCV 2021), Sec. 3.2, Eq. (4): on non-overlapping M×M windows,
    ``Attention(Q, K, V) = SoftMax(Q·Kᵀ/√d + B)·V`` with B gathered from a learned
    ((2M−1)², heads) table by the tokens' relative offset; ``shift_size > 0`` gives the shifted
    configuration (cyclic shift by s and the −100 mask between sub-windows, as in the official
    code). On a map no larger than the window (min(H, W) <= M) the window shrinks to min(H, W) and
    the shift is dropped, as in official Swin (:func:`map_window`; timm 1.0 shrinks each axis on its
    own, which differs only on non-square maps with one side <= M). Maps whose H or W is not a
    multiple of the window are padded after the qkv projection: padded tokens have q = k = v = 0,
    whereas timm pads before the projection, so with ``qkv_bias=True`` its padded tokens carry the qkv
    bias (k = b_k, v = b_v). Without a qkv bias the two agree. As a plug-in the block is pre-norm and residual,

        y = x + γ ⊙ proj(WMSA(LN(x))),

    with a per-channel layer scale γ (Touvron et al., CaiT, ICCV 2021) initialised to 1e-4 so an
    inserted block starts next to the identity but every parameter still receives gradient.
    Deviations from a Swin block: no MLP half (this is the attention only), the γ layer scale.

    Runs on the fused Triton kernel for CUDA tensors (window ≤ 12, head dim ≤ 64) and on the
    PyTorch reference elsewhere; see :func:`plugattn.kernels.window_attention`.

    Args:
        channels: C.
        num_heads: heads, must divide C; default :func:`default_num_heads` (head dim nearest Swin's 32).
        window_size: M > 0 (Swin: 7).
        shift_size: 0 ≤ s < M (Swin alternates 0 and M // 2).
        qkv_bias: bias in the qkv projection (Swin: True).

    Example:
        >>> block = WindowAttention2d(64, window_size=7, shift_size=3)
        >>> block(torch.randn(2, 64, 20, 15)).shape
        torch.Size([2, 64, 20, 15])
    """

    def __init__(
        self,
        channels: int,
        num_heads: Optional[int] = None,
        window_size: int = 7,
        shift_size: int = 0,
        qkv_bias: bool = True,
    ) -> None:
        super().__init__()
        check_int("channels", channels)
        num_heads = default_num_heads(channels) if num_heads is None else check_int("num_heads", num_heads)
        if channels % num_heads:
            raise ValueError(f"num_heads must divide channels={channels}, got num_heads={num_heads}")
        check_int("window_size", window_size)
        check_int("shift_size", shift_size, minimum=0)
        if shift_size >= window_size:
            raise ValueError(f"shift_size must be in [0, window_size={window_size}), got {shift_size}")
        self.channels = channels
        self.num_heads = num_heads
        self.head_dim = channels // num_heads
        self.window_size = window_size
        self.shift_size = shift_size
        self.scale = self.head_dim ** -0.5
        self.norm = nn.LayerNorm(channels)
        self.qkv = nn.Linear(channels, 3 * channels, bias=qkv_bias)
        self.proj = nn.Linear(channels, channels)
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)  # as in Swin
        self.gamma = nn.Parameter(torch.full((channels,), 1e-4))

    @torch.jit.ignore  # TorchScript calls back into Python here (the kernel dispatch is Python)
    def _attend(self, qkv):  # unannotated: TorchScript then reads Tensor -> Tensor (annotations are strings here)
        """(B, H, W, 3C) -> (B, H, W, C): (shifted) window attention of the packed q, k, v."""
        return window_attention_on_map(qkv, self.relative_position_bias_table, self.window_size,
                                       self.shift_size, self.scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_feature_map(x, self.channels, "WindowAttention2d")
        tokens = self.norm(x.permute(0, 2, 3, 1))  # (B, C, H, W) -> (B, H, W, C)
        qkv = self.qkv(tokens)  # (B, H, W, 3C), channels (3, heads, d)
        attended = self._attend(qkv)  # (B, H, W, C)
        update = self.gamma * self.proj(attended)  # (B, H, W, C)
        return x + update.permute(0, 3, 1, 2)

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, num_heads={self.num_heads}, window_size={self.window_size}, "
                f"shift_size={self.shift_size}")
