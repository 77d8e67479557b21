"""MobileNeXt 1.0x (the sandglass network).

Paper: Daquan Zhou, Qibin Hou, Yunpeng Chen, Jiashi Feng, Shuicheng Yan, "Rethinking Bottleneck
Structure for Efficient Mobile Network Design", ECCV 2020.

Sandglass block (Sec. 3.2, Fig. 3(b), Table 1): on a high-dimensional input of M channels,
3x3 depthwise + ReLU6, linear 1x1 reduction to M/t, 1x1 expansion to N + ReLU6, linear 3x3
depthwise (stride s); the identity shortcut connects the wide ends when the shape is kept.
Table 3 (architecture, t / c / n / s): a 3x3 stride-2 conv to 32, then sandglass stages
``(2,96,1,2) (6,144,1,1) (6,192,3,2) (6,288,3,2) (6,384,4,1) (6,576,4,2) (6,960,3,1) (6,1280,1,1)``,
global average pooling and the classifier (dropout 0.2).

Details the table leaves open follow the authors' code (github.com/zhoudaquan/rethinking_bottleneck_design,
``mnext.py``): the reduced width is ``C_in // t``, raised to ``make_divisible(ceil(C_out / 6), 16)``
when smaller than ``C_out / 6``; a stage's first block that changes the width drops the first
depthwise conv (and, at stride 1, the second too), except the t = 2 first block and single-block
stride-1 stages, which keep both; the identity shortcut covers all channels (identity tensor
multiplier 1.0). Init: He-normal over fan-out for convs, N(0, 0.01) for the classifier.

Reference count: the authors' README performance table gives 3.5M parameters at 1.0x (rounded; there is no
torchvision / timm MobileNeXt to load weights from). This implementation has 3,535,416 (1000 classes),
which rounds to 3.5M; the architecture was checked against the paper's tables and the authors' code
block by block (widths, strides, which depthwise convs exist), and the test re-derives the count from
a per-layer formula written independently of this file.
"""
from __future__ import annotations

import math
from typing import Any, List

import torch
import torch.nn as nn

from ..._validate import check_int
from ..layers import (
    ConvNormAct, ConvResidual, PooledClassifierNet, check_block_args, check_common_args, init_mobile_weights,
    make_classifier, make_divisible,
)
from ..registry import register_backbone

__all__ = ["SandGlass", "MobileNeXt", "mobilenext_100"]

# Table 3: reduction t, output channels c, repeats n, first stride s
MOBILENEXT_STAGES = [
    (2, 96, 1, 2),
    (6, 144, 1, 1),
    (6, 192, 3, 2),
    (6, 288, 3, 2),
    (6, 384, 4, 1),
    (6, 576, 4, 2),
    (6, 960, 3, 1),
    (6, 1280, 1, 1),
]


def sandglass_hidden_width(in_channels: int, out_channels: int, reduction: int) -> int:
    """Width of the sandglass bottleneck: ``C_in // t``, at least ``ceil(C_out / 6)`` rounded to 16.

    Example:
        >>> sandglass_hidden_width(960, 1280, 6)
        208
    """
    hidden = in_channels // reduction
    if hidden < out_channels / 6.0:
        hidden = make_divisible(math.ceil(out_channels / 6.0), 16)
    return hidden


class SandGlass(ConvResidual):
    """Sandglass block (paper Fig. 3(b)): depthwise -> 1x1 reduce -> 1x1 expand -> depthwise, identity
    shortcut between the wide ends.

    Args:
        in_channels / out_channels: block widths M and N.
        stride: stride of the last depthwise conv.
        reduction: the paper's t (the bottleneck is ``C_in // t`` wide).
        keep_depthwise: keep both depthwise convs even when the width changes (the authors' code
            does so for the t = 2 block and single-block stride-1 stages).

    Example:
        >>> SandGlass(192, 192, stride=1, reduction=6)(torch.randn(2, 192, 8, 8)).shape
        torch.Size([2, 192, 8, 8])
    """

    def __init__(
        self, in_channels: int, out_channels: int, stride: int, reduction: int, keep_depthwise: bool = False
    ) -> None:
        super().__init__()
        check_block_args(in_channels, out_channels, stride)
        check_int("reduction", reduction)
        hidden = sandglass_hidden_width(in_channels, out_channels, reduction)
        full_block = reduction == 2 or keep_depthwise or in_channels == out_channels
        first_depthwise = full_block
        last_depthwise = full_block or stride == 2
        layers: List[nn.Module] = []
        if first_depthwise:
            # spatial mixing at the wide input: (B, M, H, W) -> (B, M, H, W)
            layers += [
                nn.Conv2d(in_channels, in_channels, 3, 1, 1, groups=in_channels, bias=False),
                nn.BatchNorm2d(in_channels),
                nn.ReLU6(inplace=True),
            ]
        layers += [
            nn.Conv2d(in_channels, hidden, 1, bias=False),  # linear reduction: -> (B, M/t, H, W)
            nn.BatchNorm2d(hidden),
            nn.Conv2d(hidden, out_channels, 1, bias=False),  # expansion: -> (B, N, H, W)
            nn.BatchNorm2d(out_channels),
            nn.ReLU6(inplace=True),
        ]
        if last_depthwise:
            # linear spatial mixing at the wide output: -> (B, N, H/s, W/s)
            layers += [
                nn.Conv2d(out_channels, out_channels, 3, stride, 1, groups=out_channels, bias=False),
                nn.BatchNorm2d(out_channels),
            ]
        self.conv = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_channels == out_channels and not keep_depthwise
        self.out_channels = out_channels


class MobileNeXt(PooledClassifierNet):
    """MobileNeXt (Zhou et al., ECCV 2020), layout of the authors' code (``features``, ``classifier``).

    Args:
        num_classes: classifier outputs (0: identity head, ``forward`` returns pooled features).
        in_chans: input image channels.
        width_mult: width multiplier (multiples of 8; the 1280-wide last stage is kept for ``width_mult < 1``).
        dropout: dropout before the classifier (0.2).

    Example:
        >>> MobileNeXt(num_classes=10)(torch.randn(1, 3, 64, 64)).shape
        torch.Size([1, 10])
    """

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, width_mult: float = 1.0, dropout: float = 0.2) -> None:
        super().__init__()
        self.in_chans = in_chans
        check_common_args(num_classes, in_chans, width_mult, dropout)
        self.num_classes = num_classes
        in_channels = make_divisible(32 * width_mult, 8)
        layers: List[nn.Module] = [ConvNormAct(in_chans, in_channels, 3, 2, act="relu6")]
        for reduction, channels, repeats, first_stride in MOBILENEXT_STAGES:
            out_channels = make_divisible(channels * width_mult, 8)
            if channels == 1280 and width_mult < 1:
                out_channels = 1280
            single_stride1 = repeats == 1 and first_stride == 1
            layers.append(SandGlass(in_channels, out_channels, first_stride, reduction, keep_depthwise=single_stride1))
            in_channels = out_channels
            for _ in range(repeats - 1):
                layers.append(SandGlass(in_channels, out_channels, 1, reduction))
        self.features = nn.Sequential(*layers)
        self.num_features = in_channels
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = make_classifier(in_channels, num_classes, dropout)
        init_mobile_weights(self, linear="normal")


@register_backbone(
    "mobilenext_100",
    family="cnn",
    aliases=("mobilenext",),
    paper="Zhou, Hou, Chen, Feng, Yan: Rethinking Bottleneck Structure for Efficient Mobile Network Design",
    venue="ECCV",
    year=2020,
    params=3_500_000,
    params_rounded_to=100_000,  # the paper gives 3.5M only; see the docstring for how it was checked
)
def mobilenext_100(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> MobileNeXt:
    """MobileNeXt 1.0x (paper / authors' README: 3.5M parameters, rounded; this model: 3,535,416).

    Example:
        >>> mobilenext_100(num_classes=10)(torch.randn(1, 3, 64, 64)).shape
        torch.Size([1, 10])
    """
    return MobileNeXt(num_classes=num_classes, in_chans=in_chans, **kwargs)
