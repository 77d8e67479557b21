"""Bottleneck Attention Module (BAM).

Paper: Jongchan Park, Sanghyun Woo, Joon-Young Lee, In So Kweon, "BAM: Bottleneck Attention Module",
BMVC 2018.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .._validate import check_batch_statistics, check_feature_map, check_int
from .registry import register_attention


class BAMChannelGate(nn.Module):
    """BAM channel branch, Eq. (2): ``Mc = BN(MLP(AvgPool(F)))`` with MLP C -> C/r -> C.

    The output BatchNorm of Eq. (2) ("to adjust the scale with the spatial branch output") is kept; the
    hidden layer is Linear -> BatchNorm1d -> ReLU as in the authors' code (Jongchan/attention-module
    ``bam.py``, which omits the output BN). Linear layers followed by a BN have no bias (BN cancels it).

    Example:
        >>> BAMChannelGate(32, 16)(torch.randn(2, 32, 5, 5)).shape
        torch.Size([2, 32, 1, 1])
    """

    def __init__(self, channel: int, reduction: int) -> None:
        super().__init__()
        hidden = max(1, channel // reduction)
        self.fc1 = nn.Linear(channel, hidden, bias=False)
        self.bn = nn.BatchNorm1d(hidden)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(hidden, channel, bias=False)
        self.bn_out = nn.BatchNorm1d(channel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = x.mean(dim=(2, 3))  # (B, C, H, W) -> (B, C)
        hidden = self.relu(self.bn(self.fc1(pooled)))  # (B, C) -> (B, C/r)
        return self.bn_out(self.fc2(hidden))[:, :, None, None]  # (B, C/r) -> (B, C, 1, 1)


class BAMSpatialGate(nn.Module):
    """BAM spatial branch, Eq. (3):
    ``Ms = BN(f3^{1x1}(f2^{3x3}(f1^{3x3}(f0^{1x1}(F)))))`` with two dilated 3x3 convs.

    Each conv but the last is followed by BatchNorm and ReLU, as in the authors' code; the last 1x1 conv
    maps to one channel and is followed by the output BN of Eq. (3) (which the code omits). Convs
    followed by a BN have no bias.

    Example:
        >>> BAMSpatialGate(32, 16, 4)(torch.randn(2, 32, 5, 5)).shape
        torch.Size([2, 1, 5, 5])
    """

    def __init__(self, channel: int, reduction: int, dilation: int) -> None:
        super().__init__()
        hidden = max(1, channel // reduction)
        layers = [nn.Conv2d(channel, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU()]
        for _ in range(2):
            layers += [
                nn.Conv2d(hidden, hidden, 3, padding=dilation, dilation=dilation, bias=False),
                nn.BatchNorm2d(hidden),
                nn.ReLU(),
            ]
        layers += [nn.Conv2d(hidden, 1, 1, bias=False), nn.BatchNorm2d(1)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)  # (B, C, H, W) -> (B, 1, H, W)


@register_attention(
    "bam",
    paper="Park, Woo, Lee, Kweon: BAM: Bottleneck Attention Module",
    venue="BMVC",
    year=2018,
)
class BAM(nn.Module):
    """BAM (Park et al., BMVC 2018): ``F' = F + F * M(F)``, Eq. (1), with
    ``M(F) = sigmoid(Mc(F) + Ms(F))``, Eq. (4); i.e. ``x * (1 + sigmoid(Mc + Ms))``.

    Mc (B, C, 1, 1) and Ms (B, 1, H, W) are broadcast to (B, C, H, W) before the sum.

    Deviations from the authors' code, following the paper: the code multiplies the branches
    (``1 + sigmoid(Mc * Ms)``) where Eq. (4) and the paper's combination ablation (element-wise
    summation best) add them; the code lacks the output BatchNorm of Eq. (2) and (3). Hidden
    BatchNorm + ReLU layers follow the code. Layers directly followed by BatchNorm drop their
    (redundant) bias.

    The channel branch's BatchNorm1d normalises the pooled (B, C) vector over the batch, so training
    needs a batch of at least 2: batch 1 in train mode raises a ValueError saying so (eval mode is fine).

    Args:
        channel: number of input channels C.
        reduction: reduction ratio r of both branches (paper default 16).
        dilation: dilation d of the two 3x3 convs (paper default 4).

    Example:
        >>> BAM(64)(torch.randn(2, 64, 8, 8)).shape
        torch.Size([2, 64, 8, 8])
    """

    def __init__(self, channel: int, reduction: int = 16, dilation: int = 4) -> None:
        super().__init__()
        self.channel = check_int("channel", channel)
        self.reduction = check_int("reduction", reduction)
        self.dilation = check_int("dilation", dilation)
        self.channel_gate = BAMChannelGate(channel, reduction)
        self.spatial_gate = BAMSpatialGate(channel, reduction, dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_feature_map(x, self.channel, "BAM")
        if not torch.jit.is_scripting():  # TorchScript cannot compile the message-building check
            check_batch_statistics("BAM", x, [(self.channel_gate.bn, (0,)), (self.channel_gate.bn_out, (0,))])
        attention = torch.sigmoid(self.channel_gate(x) + self.spatial_gate(x))  # (B, C, H, W)
        return x * (1 + attention)
