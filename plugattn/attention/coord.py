"""Coordinate attention.

Paper: Qibin Hou, Daquan Zhou, Jiashi Feng, "Coordinate Attention for Efficient Mobile Network Design",
CVPR 2021.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn as nn

from .._validate import check_feature_map, check_int
from .registry import register_attention


@register_attention(
    "coord",
    aliases=("coordinate", "coordatt", "coordinate_attention"),
    paper="Hou, Zhou, Feng: Coordinate Attention for Efficient Mobile Network Design",
    venue="CVPR",
    year=2021,
)
class CoordAtt(nn.Module):
    """Coordinate attention (Hou et al., CVPR 2021), Eqs. 4–9 of the paper::

        z^h = mean_W(x)                       # (B, C, H, 1)   Eq. 4
        z^w = mean_H(x)                       # (B, C, 1, W)   Eq. 5
        f   = h_swish(BN(F1([z^h, z^w])))     # shared 1x1 conv C -> mip, mip = max(8, C // r)   Eq. 6
        g^h = sigmoid(F_h(f^h)), g^w = sigmoid(F_w(f^w))                                    # Eqs. 7-8
        y   = x · g^h · g^w                                                                 # Eq. 9

    as in the official code (github.com/houqb/CoordAttention): all three 1×1 convs have biases, the
    non-linearity is h-swish. ``oup`` exists for signature compatibility with that code; the output is
    multiplied element-wise with the input, so it must equal ``inp`` (anything else raises ValueError).

    Example:
        >>> m = CoordAtt(64)
        >>> m(torch.randn(2, 64, 7, 5)).shape
        torch.Size([2, 64, 7, 5])
    """

    def __init__(self, inp: int, oup: Optional[int] = None, reduction: int = 32) -> None:
        super().__init__()
        inp = check_int("inp", inp)
        oup = inp if oup is None else check_int("oup", oup)
        if oup != inp:
            raise ValueError(
                f"oup must equal inp ({inp}) because the gates multiply the input element-wise, got oup={oup}"
            )
        reduction = check_int("reduction", reduction)
        self.inp = inp
        self.reduction = reduction
        mip = max(8, inp // reduction)
        self.mip = mip
        self.conv1 = nn.Conv2d(inp, mip, kernel_size=1)
        self.bn1 = nn.BatchNorm2d(mip)
        self.act = nn.Hardswish()
        self.conv_h = nn.Conv2d(mip, oup, kernel_size=1)
        self.conv_w = nn.Conv2d(mip, oup, kernel_size=1)

    def gates(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """The two directional gates (a_h: (B, C, H, 1), a_w: (B, C, 1, W)), each in (0, 1)."""
        check_feature_map(x, self.inp, "CoordAtt")
        height = x.shape[2]
        width = x.shape[3]
        pooled_h = x.mean(dim=3, keepdim=True)  # (B, C, H, W) -> (B, C, H, 1)
        pooled_w = x.mean(dim=2, keepdim=True)  # (B, C, H, W) -> (B, C, 1, W)
        # Lay both strips along one spatial axis so one conv + BN sees both directions together.
        pooled_w = pooled_w.permute(0, 1, 3, 2)  # (B, C, 1, W) -> (B, C, W, 1); einops cannot take fx proxies
        y = torch.cat([pooled_h, pooled_w], dim=2)  # (B, C, H + W, 1)
        y = self.act(self.bn1(self.conv1(y)))  # (B, mip, H + W, 1)
        parts = torch.split(y, [height, width], dim=2)
        feature_h = parts[0]  # (B, mip, H, 1)
        feature_w = parts[1].permute(0, 1, 3, 2)  # (B, mip, W, 1) -> (B, mip, 1, W)
        gate_h = torch.sigmoid(self.conv_h(feature_h))  # (B, C, H, 1)
        gate_w = torch.sigmoid(self.conv_w(feature_w))  # (B, C, 1, W)
        return gate_h, gate_w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate_h, gate_w = self.gates(x)
        return x * gate_h * gate_w

    def extra_repr(self) -> str:
        return f"inp={self.inp}, mip={self.mip}, reduction={self.reduction}"


CoordinateAttention = CoordAtt  # the classic pytorch-attention name (coordatten.py)
