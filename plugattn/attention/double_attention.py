"""Double attention (A^2) block.

Paper: Yunpeng Chen, Yannis Kalantidis, Jianshu Li, Shuicheng Yan, Jiashi Feng, "A^2-Nets: Double
Attention Networks", NeurIPS 2018.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn

from .._validate import check_feature_map, check_int
from .registry import register_attention


@register_attention(
    "a2",
    aliases=("double",),
    paper="Chen, Kalantidis, Li, Yan, Feng: A^2-Nets: Double Attention Networks",
    venue="NeurIPS",
    year=2018,
)
class DoubleAttention(nn.Module):
    """Double attention block (Chen et al., NeurIPS 2018).

    With ``A = phi(X)`` (c_m maps), ``B = theta(X)`` (c_n maps) and ``V = rho(X)`` (c_n maps), all 1x1
    convs:

    * first attention step, feature gathering (second-order attention pooling, arXiv:1810.11579):
      ``G = A softmax_HW(B)^T`` (B, c_m, c_n): c_n global descriptors, each a softmax-over-positions
      weighted sum of A;
    * second attention step, feature distribution: ``Z = G softmax_cn(V)`` (B, c_m, HW): at every
      position a softmax-over-c_n mixture of the descriptors; the double attention operation is
      ``Z = [A softmax(B)^T] softmax(V)``;
    * double attention block: an extra 1x1 conv expands Z back to ``in_channels`` and the result is
      added to the input (residual), ``X + conv(Z)``.

    (Step names follow the paper's Sec. 3 headings; equation numbers are deliberately not cited here
    because we could not check them against the paper text.)

    Deviation from the classic ``pytorch-attention`` ``DoubleAttention``: it returns ``conv(Z)``
    without the residual; the paper adds the block to its input.

    Args:
        in_channels: number of input channels C.
        c_m: channels of A and of the gathered descriptors (default ``max(1, C // 4)``).
        c_n: number of descriptors / attention maps (default ``max(1, C // 4)``).

    Example:
        >>> DoubleAttention(64, 32, 32)(torch.randn(2, 64, 8, 8)).shape
        torch.Size([2, 64, 8, 8])
    """

    def __init__(self, in_channels: int, c_m: Optional[int] = None, c_n: Optional[int] = None) -> None:
        super().__init__()
        self.in_channels = check_int("in_channels", in_channels)
        self.c_m = max(1, in_channels // 4) if c_m is None else check_int("c_m", c_m)
        self.c_n = max(1, in_channels // 4) if c_n is None else check_int("c_n", c_n)
        self.conv_a = nn.Conv2d(in_channels, self.c_m, 1)
        self.conv_b = nn.Conv2d(in_channels, self.c_n, 1)
        self.conv_v = nn.Conv2d(in_channels, self.c_n, 1)
        self.conv_reconstruct = nn.Conv2d(self.c_m, in_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_feature_map(x, self.in_channels, "DoubleAttention")
        features = self.conv_a(x).flatten(2)  # (B, c_m, H, W) -> (B, c_m, HW)
        gather_maps = torch.softmax(self.conv_b(x).flatten(2), dim=2)  # (B, c_n, HW), softmax over HW
        distribute_maps = torch.softmax(self.conv_v(x).flatten(2), dim=1)  # (B, c_n, HW), softmax over c_n
        descriptors = torch.bmm(features, gather_maps.transpose(1, 2))  # (B, c_m, c_n)
        distributed = torch.bmm(descriptors, distribute_maps)  # (B, c_m, HW)
        distributed = distributed.unflatten(2, x.shape[2:])  # (B, c_m, H, W)
        return x + self.conv_reconstruct(distributed)  # (B, C, H, W)
