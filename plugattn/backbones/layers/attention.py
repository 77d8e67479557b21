"""Multi-head self-attention over tokens and the pre-norm transformer block built on it
(Vaswani et al., "Attention Is All You Need", NeurIPS 2017, Sec. 3.2.2; ViT, Dosovitskiy et al., ICLR
2021, Eq. (2)-(3)). Parameter names are timm's (``qkv``, ``proj``, ``norm1``, ``attn``, ``norm2``, ``mlp``).
"""
from __future__ import annotations

from typing import Callable, Optional, Tuple

import torch
import torch.fx
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from .checks import check_heads
from .drop import DropPath
from .mlp import Mlp

# einops cannot see torch.fx proxies: record rearrange as one opaque call so the models stay traceable
torch.fx.wrap("rearrange")


class Attention(nn.Module):
    """Multi-head self-attention softmax(Q K^T / sqrt(d_head)) V over tokens, with
    ``F.scaled_dot_product_attention``.

    Example:
        >>> Attention(16, num_heads=2)(torch.randn(2, 5, 16)).shape
        torch.Size([2, 5, 16])
    """

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = True) -> None:
        super().__init__()
        check_heads(dim, num_heads)
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def split_heads(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, N, C) -> q, k, v each (B, heads, N, d_head)."""
        qkv = rearrange(self.qkv(x), "b n (three h d) -> three b h n d", three=3, h=self.num_heads)
        return qkv[0], qkv[1], qkv[2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.split_heads(x)
        x = F.scaled_dot_product_attention(q, k, v)  # (B, heads, N, d_head)
        x = rearrange(x, "b h n d -> b n (h d)")
        return self.proj(x)


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(LN(x))`` then ``x + mlp(LN(x))`` (ViT Eq. (2)-(3)).
    Tokens in, tokens out: (B, N, C) -> (B, N, C).

    Example:
        >>> Block(16, num_heads=2)(torch.randn(2, 5, 16)).shape
        torch.Size([2, 5, 16])
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 drop_path: float = 0.0, attn_layer: Optional[Callable[..., nn.Module]] = None) -> None:
        super().__init__()
        attn_layer = attn_layer or Attention
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = attn_layer(dim, num_heads=num_heads, qkv_bias=qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))
