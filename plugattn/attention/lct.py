"""LCT: Linear Context Transform block.

Ruan, Wen, Zheng, Zheng, "Linear Context Transform Block", AAAI 2020 (arXiv:1909.03834).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
from einops import rearrange

from .._validate import check_feature_map, check_int, check_positive_float, largest_divisor_at_most
from .registry import register_attention

DEFAULT_GROUPS = 8  # the default before it was lowered to fit C (the classic collection's examples use 8)

# einops cannot see torch.fx proxies: record rearrange as one opaque call so the module stays traceable
torch.fx.wrap("rearrange")


@register_attention(
    "lct",
    aliases=("linear_context_transform",),
    paper="Ruan et al., Linear Context Transform Block",
    venue="AAAI",
    year=2020,
)
class LCT(nn.Module):
    """Linear Context Transform (Ruan et al., AAAI 2020, Sec. 3).

    Context aggregation: y = GAP(x). Normalisation: the C channels are split into G groups and each y_c is
    standardised with the mean and (biased) variance of its group, y^_c = (y_c - mu_g) / sqrt(var_g + eps).
    Linear transform: a_c = w_c * y^_c + b_c (per-channel, 2C parameters); output x * sigmoid(a).

    Init w = 1, b = 0, as External-Attention-pytorch's ``LCT`` (``model/attention/LCTAttention.py``) and like
    a GroupNorm affine, so the gate starts at sigmoid(y^), already input-dependent. Not verified against
    the paper: we could not read its init statement, and other public LCT code (an ``LCTGate`` built on
    ``nn.GroupNorm``) initialises w = 0, b = 1 instead, i.e. a constant gate sigmoid(1) at start.
    The variance is computed as mean((y - mu)^2) rather than External-Attention-pytorch's E[y^2] - mu^2,
    the same value without the cancellation that can make it negative in low precision. Parameters: 2C.

    Args:
        channels: C.
        groups: G, the number of channel groups. ``None`` (default) uses 8, lowered to the largest
            divisor of C that is <= 8 (``LCT(12)`` uses 6 groups, ``LCT(7)`` 7); an explicit ``groups``
            must divide C, else ValueError.
        eps: added to the group variance.

    Example:
        >>> LCT(64)(torch.randn(2, 64, 8, 8)).shape
        torch.Size([2, 64, 8, 8])
    """

    def __init__(self, channels: int, groups: Optional[int] = None, eps: float = 1e-5) -> None:
        super().__init__()
        self.channels = check_int("channels", channels)
        if groups is None:
            groups = largest_divisor_at_most(channels, DEFAULT_GROUPS)
        self.groups = check_int("groups", groups)
        self.eps = check_positive_float("eps", eps)
        if channels % groups != 0:
            raise ValueError(
                f"channels must be divisible by groups, got channels={channels}, groups={groups} "
                f"(leave groups=None to pick the largest divisor <= {DEFAULT_GROUPS})"
            )
        self.w = nn.Parameter(torch.ones(channels))
        self.b = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_feature_map(x, self.channels, "LCT")
        pooled = x.mean(dim=(2, 3))  # (B, C, H, W) -> (B, C)
        if torch.jit.is_scripting():  # TorchScript cannot compile einops: the same reshapes spelled out
            grouped = pooled.unflatten(1, (self.groups, -1))  # (B, G, n)
        else:
            grouped = rearrange(pooled, "b (g n) -> b g n", g=self.groups)  # n = C / G channels per group
        mean = grouped.mean(dim=-1, keepdim=True)  # (B, G, 1)
        var = (grouped - mean).square().mean(dim=-1, keepdim=True)  # (B, G, 1)
        normalised = (grouped - mean) / (var + self.eps).sqrt()
        if torch.jit.is_scripting():
            normalised = normalised.flatten(1)[:, :, None, None]  # (B, C, 1, 1)
            weight = self.w[None, :, None, None]
            bias = self.b[None, :, None, None]
        else:
            normalised = rearrange(normalised, "b g n -> b (g n) 1 1")  # (B, C, 1, 1)
            weight = rearrange(self.w, "c -> 1 c 1 1")
            bias = rearrange(self.b, "c -> 1 c 1 1")
        return x * torch.sigmoid(weight * normalised + bias)
