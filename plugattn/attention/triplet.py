"""Triplet attention.

Paper: Diganta Misra, Trikay Nalamada, Ajay Uppili Arasanipalai, Qibin Hou, "Rotate to Attend:
Convolutional Triplet Attention Module", WACV 2021.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn

from .._validate import check_batch_statistics, check_feature_map, check_int
from .registry import register_attention


class ZPool(nn.Module):
    """Z-pool (the paper's Eq. 1): [max, mean] over dim 1, (B, D, H, W) -> (B, 2, H, W)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)], dim=1)


class AttentionGate(nn.Module):
    """One branch: Z-pool -> k×k conv (2 -> 1, no bias) -> BN -> sigmoid, then x · gate.

    No ReLU before the sigmoid: the official code builds this conv with ``BasicConv(..., relu=False)``;
    its BatchNorm uses momentum 0.01, kept here.
    """

    def __init__(self, kernel_size: int) -> None:
        super().__init__()
        self.compress = ZPool()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(1, eps=1e-5, momentum=0.01)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """(B, D, H, W) -> (B, 1, H, W) gate in (0, 1)."""
        return torch.sigmoid(self.bn(self.conv(self.compress(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


@register_attention(
    "triplet",
    aliases=("triplet_attention",),
    paper="Misra, Nalamada, Arasanipalai, Hou: Rotate to Attend: Convolutional Triplet Attention Module",
    venue="WACV",
    year=2021,
)
class TripletAttention(nn.Module):
    """Triplet attention (Misra et al., WACV 2021), Eq. 2 of the paper::

        y = 1/3 · ( rot⁻¹(x̂₁ σ(ψ₁(Z(x̂₁))))
                  + rot⁻¹(x̂₂ σ(ψ₂(Z(x̂₂))))
                  + x σ(ψ₃(Z(x))) )

    where x̂₁ rotates so H takes the channel position (C–W interaction), x̂₂ rotates so W does (C–H
    interaction), Z is Z-pool [max, mean] over the leading dim and ψ is a k×k conv (2 -> 1, no bias)
    followed by BN. With ``no_spatial=True`` the H–W branch is dropped and the two others averaged.
    Branch names ``cw``, ``hc``, ``hw`` follow the official code (github.com/landskape-ai/triplet-attention).

    ``channels`` is optional (the module is channel-agnostic); when given it is checked against the input.
    Each branch's BatchNorm normalises a one-channel map over the batch and the two axes its gate spans,
    so in training mode a single 1x1 map (or a branch plane of one value, e.g. C = W = 1 at batch 1)
    raises a ValueError saying so; eval mode is fine.

    Example:
        >>> m = TripletAttention(64)
        >>> m(torch.randn(2, 64, 7, 5)).shape
        torch.Size([2, 64, 7, 5])
    """

    def __init__(
        self, channels: Optional[int] = None, kernel_size: int = 7, no_spatial: bool = False
    ) -> None:
        super().__init__()
        self.channels = None if channels is None else check_int("channels", channels)
        kernel_size = check_int("kernel_size", kernel_size)
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd so the padded conv keeps H and W, got {kernel_size}")
        if not isinstance(no_spatial, bool):
            raise ValueError(f"no_spatial must be True or False, got {no_spatial!r}")
        self.kernel_size = kernel_size
        self.no_spatial = no_spatial
        self.cw = AttentionGate(kernel_size)
        self.hc = AttentionGate(kernel_size)
        if not no_spatial:
            self.hw = AttentionGate(kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_feature_map(x, self.channels, "TripletAttention")
        if not torch.jit.is_scripting():  # TorchScript cannot compile the message-building check
            norms = [(self.cw.bn, (0, 1, 3)), (self.hc.bn, (0, 2, 1))]  # gates over (C, W) and (H, C)
            if not self.no_spatial:
                norms.append((self.hw.bn, (0, 2, 3)))  # gate over (H, W)
            check_batch_statistics("TripletAttention", x, norms)
        # C–W branch: H takes the pooled position, so the gate spans (C, W).
        # (einops cannot take torch.fx proxies, hence permute; the shapes are in the comments.)
        rotated_h = x.permute(0, 2, 1, 3)  # (B, C, H, W) -> (B, H, C, W)
        out_cw = self.cw(rotated_h).permute(0, 2, 1, 3)  # (B, H, C, W) -> (B, C, H, W)
        # C–H branch: W takes the pooled position, so the gate spans (H, C).
        rotated_w = x.permute(0, 3, 2, 1)  # (B, C, H, W) -> (B, W, H, C)
        out_hc = self.hc(rotated_w).permute(0, 3, 2, 1)  # (B, W, H, C) -> (B, C, H, W)
        if self.no_spatial:
            return (out_cw + out_hc) / 2
        out_hw = self.hw(x)  # plain spatial gate over (H, W)
        return (out_cw + out_hc + out_hw) / 3

    def extra_repr(self) -> str:
        return f"channels={self.channels}, kernel_size={self.kernel_size}, no_spatial={self.no_spatial}"
