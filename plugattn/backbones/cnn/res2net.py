"""Res2Net-50 (26w x 4s).

Paper: Shang-Hua Gao, Ming-Ming Cheng, Kai Zhao, Xin-Yu Zhang, Ming-Hsuan Yang, Philip Torr,
"Res2Net: A New Multi-scale Backbone Architecture", IEEE TPAMI 2019 (2021 issue).

The Res2Net block (paper Fig. 2, Eq. 1) replaces the 3x3 conv of a ResNet bottleneck by ``s``
groups of ``w`` channels each: after the 1x1 conv, the features are split into
``x_1 .. x_s`` and

    y_i = x_i                      for i = s (the last split passes through; the reference
                                   code keeps it last in the concatenation)
    y_i = K_i(x_i)                 for i = 1
    y_i = K_i(x_i + y_{i-1})       for 1 < i < s

with ``K_i`` a 3x3 conv-BN-ReLU. In the first block of a stage (stride 2 or a projection
shortcut) the splits are not chained (``y_i = K_i(x_i)``) and the pass-through split is
3x3 average pooled with the block's stride, as in the official code (gasvn/Res2Net) and timm.
The ``y_i`` are concatenated and fused by a 1x1 conv. ``w = floor(planes * 26 / 64)``.

The trunk is :class:`plugattn.backbones.cnn.resnet.ResNet` (stages [3, 4, 6, 3]); module names
(``convs.i``, ``bns.i``) are timm's, so timm's ``res2net50_26w_4s`` state_dict loads unchanged.

Reference parameter count: 25,699,120 (timm ``res2net50_26w_4s``, published as 25.7M, measured
here by building it with random weights). The architecture is checked by loading timm's weights
and matching its outputs (tests/backbones/cnn/test_res2net.py).
"""
from __future__ import annotations

import math
from typing import Any, List, Optional

import torch
import torch.nn as nn

from ..._validate import check_int
from ..layers import NormLayer, conv1x1
from ..registry import register_backbone
from .resnet import ResNet

__all__ = ["Bottle2neck", "res2net50_26w_4s"]


class Bottle2neck(nn.Module):
    """Res2Net bottleneck: 1x1 conv, ``scale`` hierarchically chained 3x3 convs on channel splits,
    1x1 conv expanding by 4, residual add (Gao et al., Eq. 1).

    Example:
        >>> Bottle2neck(256, 64, scale=4, base_width=26)(torch.randn(1, 256, 8, 8)).shape
        torch.Size([1, 256, 8, 8])
    """

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: Optional[nn.Module] = None,
        groups: int = 1,
        base_width: int = 26,
        dilation: int = 1,
        norm_layer: Optional[NormLayer] = None,
        scale: int = 4,
    ) -> None:
        super().__init__()
        check_int("scale", scale, minimum=1)
        norm_layer = norm_layer or nn.BatchNorm2d
        self.scale = scale
        # first block of a stage: splits are not chained and the last one is pooled
        self.is_first = stride > 1 or downsample is not None
        self.num_scales = max(1, scale - 1)
        width = int(math.floor(planes * (base_width / 64.0))) * groups
        self.width = width
        outplanes = planes * self.expansion

        self.conv1 = conv1x1(inplanes, width * scale)
        self.bn1 = norm_layer(width * scale)
        self.convs = nn.ModuleList(
            nn.Conv2d(width, width, 3, stride=stride, padding=dilation, dilation=dilation, groups=groups, bias=False)
            for _ in range(self.num_scales)
        )
        self.bns = nn.ModuleList(norm_layer(width) for _ in range(self.num_scales))
        self.pool = nn.AvgPool2d(kernel_size=3, stride=stride, padding=1) if self.is_first else None
        self.conv3 = conv1x1(width * scale, outplanes)
        self.bn3 = norm_layer(outplanes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))  # (B, Cin, H, W) -> (B, w * s, H, W)
        splits = torch.split(out, self.width, 1)  # s tensors of (B, w, H, W)
        outputs: List[torch.Tensor] = []
        previous = splits[0]
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns)):
            current = splits[i] if (i == 0 or self.is_first) else previous + splits[i]
            previous = self.relu(bn(conv(current)))  # (B, w, H/stride, W/stride)
            outputs.append(previous)
        if self.scale > 1:
            last = splits[self.scale - 1]
            outputs.append(self.pool(last) if self.pool is not None else last)
        out = torch.cat(outputs, 1)  # -> (B, w * s, H/stride, W/stride)
        out = self.bn3(self.conv3(out))  # -> (B, 4 * planes, H/stride, W/stride)
        return self.relu(out + shortcut)

    def zero_init_last(self) -> None:
        """Zero the last BN scale so the block starts as the identity."""
        nn.init.zeros_(self.bn3.weight)


@register_backbone(
    "res2net50_26w_4s",
    family="cnn",
    aliases=("res2net50",),
    paper="Gao, Cheng, Zhao, Zhang, Yang, Torr: Res2Net: A New Multi-scale Backbone Architecture",
    venue="TPAMI",
    year=2019,
    params=25_699_120,
)
def res2net50_26w_4s(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """Res2Net-50 with width 26 and scale 4 (``Bottle2neck``, stages [3, 4, 6, 3]); 25,699,120
    parameters as timm's ``res2net50_26w_4s``.

    Example:
        >>> res2net50_26w_4s(num_classes=10)(torch.randn(1, 3, 64, 64)).shape
        torch.Size([1, 10])
    """
    return ResNet(
        Bottle2neck, [3, 4, 6, 3], num_classes=num_classes, in_chans=in_chans, width_per_group=26,
        block_kwargs={"scale": 4}, **kwargs,
    )
