"""Swin window attention (W-MSA / SW-MSA) as a residual plug-in for (B, C, H, W) feature maps.

Paper: Ze Liu, Yutong Lin, Yue Cao, Han Hu, Yixuan Wei, Zheng Zhang, Stephen Lin, Baining Guo,
"Swin Transformer: Hierarchical Vision Transformer using Shifted Windows", ICCV 2021.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn

from .._validate import check_feature_map, check_int
from ..kernels.window_attention import window_attention
from .registry import register_attention

# The op dispatches on device/dtype and checks shapes in Python: under torch.fx it stays one call node.
torch.fx.wrap("window_attention")


def default_num_heads(channels: int) -> int:
    """Swin's 32 channels per head (Swin-T: 96/3, 192/6, 384/12, 768/24), at least one head.

    Example:
        >>> default_num_heads(96), default_num_heads(16)
        (3, 1)
    """
    return max(1, channels // 32)


@register_attention("window", aliases=("swin", "window_attention"), paper="Liu et al., Swin Transformer: "
                    "Hierarchical Vision Transformer using Shifted Windows", venue="ICCV", year=2021)
class WindowAttention2d(nn.Module):
    """Swin window multi-head self-attention with relative position bias, as a residual plug-in.

    Follows Liu et al. (ICCV 2021), Sec. 3.2, Eq. (4): on non-overlapping M×M windows,
    ``Attention(Q, K, V) = SoftMax(Q·Kᵀ/√d + B)·V`` with B gathered from a learned
    ((2M−1)², heads) table by the tokens' relative offset; ``shift_size > 0`` gives the shifted
    configuration (cyclic shift by s and the −100 mask between sub-windows, as in the official
    code). Maps whose H or W is not a multiple of M are zero-padded (timm's convention, see
    :mod:`plugattn.kernels.window_attention`). As a plug-in the block is pre-norm and residual,

        y = x + γ ⊙ proj(WMSA(LN(x))),

    with a per-channel layer scale γ (Touvron et al., CaiT, ICCV 2021) initialised to 1e-4 so an
    inserted block starts next to the identity but every parameter still receives gradient.
    Deviations from a Swin block: no MLP half (this is the attention only), the γ layer scale.

    Runs on the fused Triton kernel for CUDA tensors (window ≤ 12, head dim ≤ 64) and on the
    PyTorch reference elsewhere; see :func:`plugattn.kernels.window_attention`.

    Args:
        channels: C.
        num_heads: heads, must divide C; default ``max(1, C // 32)`` (Swin's head dim 32).
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
        """(B, H, W, 3, heads, d) -> (B, H, W, heads, d): (shifted) window attention of q, k, v."""
        return window_attention(
            qkv[..., 0, :, :], qkv[..., 1, :, :], qkv[..., 2, :, :], self.relative_position_bias_table,
            self.window_size, self.shift_size, self.scale,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_feature_map(x, self.channels, "WindowAttention2d")
        tokens = self.norm(x.permute(0, 2, 3, 1))  # (B, C, H, W) -> (B, H, W, C)
        qkv = self.qkv(tokens).unflatten(-1, (3, self.num_heads, self.head_dim))  # (B, H, W, 3, heads, d)
        attended = self._attend(qkv)  # (B, H, W, heads, d)
        update = self.gamma * self.proj(attended.flatten(-2))  # (B, H, W, C)
        return x + update.permute(0, 3, 1, 2)

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, num_heads={self.num_heads}, window_size={self.window_size}, "
                f"shift_size={self.shift_size}")
