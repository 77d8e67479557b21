"""Convolutional Block Attention Module (CBAM).

Paper: Sanghyun Woo, Jongchan Park, Joon-Young Lee, In So Kweon, "CBAM: Convolutional Block Attention
Module", ECCV 2018.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .._validate import check_batch_statistics, check_feature_map, check_int
from .registry import register_attention


class ChannelGate(nn.Module):
    """CBAM channel attention, Eq. (2): ``Mc = sigmoid(MLP(AvgPool(F)) + MLP(MaxPool(F)))``.

    The MLP (C -> C/r -> ReLU -> C) is shared by both pooled descriptors; hidden width
    ``max(1, C // r)``.

    Example:
        >>> ChannelGate(32, 16)(torch.randn(2, 32, 5, 5)).shape
        torch.Size([2, 32, 1, 1])
    """

    def __init__(self, channel: int, reduction: int) -> None:
        super().__init__()
        hidden = max(1, channel // reduction)
        self.mlp = nn.Sequential(
            nn.Conv2d(channel, hidden, 1),
            nn.ReLU(),
            nn.Conv2d(hidden, channel, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg_pooled = x.mean(dim=(2, 3), keepdim=True)  # (B, C, H, W) -> (B, C, 1, 1)
        max_pooled = x.amax(dim=(2, 3), keepdim=True)  # (B, C, H, W) -> (B, C, 1, 1)
        return torch.sigmoid(self.mlp(avg_pooled) + self.mlp(max_pooled))  # (B, C, 1, 1)


class SpatialGate(nn.Module):
    """CBAM spatial attention, Eq. (3): ``Ms = sigmoid(f^{k x k}([AvgPool(F'); MaxPool(F')]))``.

    Pooling is over channels. As in the authors' code (Jongchan/attention-module, ``BasicConv``), the
    k x k conv has no bias and is followed by BatchNorm (eps 1e-5, momentum 0.01) before the sigmoid;
    the paper's Eq. (3) omits that BN. That BN needs more than one value (B * H * W > 1) in training mode;
    :class:`CBAM` raises a ValueError saying so for a single 1x1 map.

    Example:
        >>> SpatialGate(7)(torch.randn(2, 32, 5, 5)).shape
        torch.Size([2, 1, 5, 5])
    """

    def __init__(self, kernel_size: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=(kernel_size - 1) // 2, bias=False)
        self.bn = nn.BatchNorm2d(1, eps=1e-5, momentum=0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg_map = x.mean(dim=1, keepdim=True)  # (B, C, H, W) -> (B, 1, H, W)
        max_map = x.amax(dim=1, keepdim=True)  # (B, C, H, W) -> (B, 1, H, W)
        pooled = torch.cat([avg_map, max_map], dim=1)  # (B, 2, H, W)
        return torch.sigmoid(self.bn(self.conv(pooled)))  # (B, 1, H, W)


@register_attention(
    "cbam",
    paper="Woo, Park, Lee, Kweon: CBAM: Convolutional Block Attention Module",
    venue="ECCV",
    year=2018,
)
class CBAM(nn.Module):
    """CBAM (Woo et al., ECCV 2018): channel attention then spatial attention, Eq. (1):
    ``F' = Mc(F) * F``, ``F'' = Ms(F') * F'``.

    Mc is Eq. (2) (:class:`ChannelGate`), Ms is Eq. (3) (:class:`SpatialGate`).

    Deviation from the paper's equations, following the authors' code: BatchNorm after the spatial
    k x k conv. Deviation from the classic ``pytorch-attention`` CBAM: the MLP keeps its biases (as in
    the authors' code) and the hidden width is ``max(1, C // r)`` instead of possibly 0.

    Args:
        channel: number of input channels C.
        reduction: MLP reduction ratio r (paper default 16).
        kernel_size: odd spatial kernel size k (paper default 7).

    Example:
        >>> CBAM(64)(torch.randn(2, 64, 8, 8)).shape
        torch.Size([2, 64, 8, 8])
    """

    def __init__(self, channel: int, reduction: int = 16, kernel_size: int = 7) -> None:
        super().__init__()
        self.channel = check_int("channel", channel)
        self.reduction = check_int("reduction", reduction)
        check_int("kernel_size", kernel_size)
        if kernel_size % 2 == 0:
            raise ValueError(
                f"kernel_size must be odd so the spatial map keeps its size, got {kernel_size!r}"
            )
        self.kernel_size = kernel_size
        self.channel_gate = ChannelGate(channel, reduction)
        self.spatial_gate = SpatialGate(kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_feature_map(x, self.channel, "CBAM")
        if not torch.jit.is_scripting():  # TorchScript cannot compile the message-building check
            check_batch_statistics("CBAM", x, [(self.spatial_gate.bn, (0, 2, 3))])  # (B, 1, H, W)
        refined = x * self.channel_gate(x)  # (B, C, H, W) * (B, C, 1, 1)
        return refined * self.spatial_gate(refined)  # (B, C, H, W) * (B, 1, H, W)
