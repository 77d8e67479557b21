"""MobileNetV2.

Paper: Mark Sandler, Andrew Howard, Menglong Zhu, Andrey Zhmoginov, Liang-Chieh Chen,
"MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018.

Table 2 of the paper: a 3x3 stride-2 conv to 32 channels, then inverted-residual stages
(t = expansion, c = output channels, n = repeats, s = stride of the first repeat)
``(1,16,1,1) (6,24,2,2) (6,32,3,2) (6,64,4,2) (6,96,3,1) (6,160,3,2) (6,320,1,1)``, a 1x1 conv to
1280, global average pooling and a linear classifier. Table 1 / Sec. 3.3: each block is
1x1 expansion + ReLU6, 3x3 depthwise (stride s) + ReLU6, linear 1x1 projection; the identity
shortcut is used when stride is 1 and the width is kept. Channels scale with ``width_mult`` and are
rounded to multiples of 8; the last conv keeps 1280 for ``width_mult <= 1``.

Module names are torchvision's (``features.N.conv.*``, ``classifier.1``), so
``load_external_weights(model, torchvision.models.mobilenet_v2().state_dict(), "torchvision")`` loads
without renaming. Reference count: torchvision ``mobilenet_v2`` has 3,504,872 parameters (1000
classes; measured by building it with random weights); the paper's Table 4 rounds it to 3.4M.
"""
from __future__ import annotations

from typing import Any, Callable, List

import torch
import torch.nn as nn

from ..._validate import check_int
from ..layers import (
    ConvNormAct, ConvResidual, PooledClassifierNet, check_block_args, check_common_args, init_mobile_weights,
    make_classifier, make_divisible,
)
from ..registry import register_backbone

__all__ = ["InvertedResidual", "MobileNetV2", "mobilenet_v2"]

# Table 2: expansion t, output channels c, repeats n, first stride s
MOBILENET_V2_STAGES = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]


class InvertedResidual(ConvResidual):
    """MobileNetV2 inverted residual with linear bottleneck (paper Table 1).

    ``conv`` holds [1x1 expand ConvNormAct (ReLU6) when t > 1, 3x3 depthwise ConvNormAct (ReLU6),
    1x1 Conv2d, BatchNorm2d] as torchvision names them.

    Example:
        >>> InvertedResidual(24, 24, stride=1, expand_ratio=6)(torch.randn(2, 24, 8, 8)).shape
        torch.Size([2, 24, 8, 8])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        expand_ratio: int,
        norm: Callable[[int], nn.Module] = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        check_block_args(in_channels, out_channels, stride)
        check_int("expand_ratio", expand_ratio)
        hidden = int(round(in_channels * expand_ratio))
        layers: List[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvNormAct(in_channels, hidden, 1, act="relu6", norm=norm))  # (B, C, H, W) -> (B, tC, H, W)
        layers += [
            ConvNormAct(hidden, hidden, 3, stride, groups=hidden, act="relu6", norm=norm),  # -> (B, tC, H/s, W/s)
            nn.Conv2d(hidden, out_channels, 1, bias=False),  # linear bottleneck -> (B, C_out, H/s, W/s)
            norm(out_channels),
        ]
        self.conv = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_channels == out_channels
        self.out_channels = out_channels


class MobileNetV2(PooledClassifierNet):
    """MobileNetV2 (Sandler et al., CVPR 2018), torchvision layout.

    Args:
        num_classes: classifier outputs (0: identity head, ``forward`` returns pooled features).
        in_chans: input image channels.
        width_mult: channel multiplier of the paper's Table 6 / Fig. 5 (1.0 is the standard model).
        dropout: dropout before the classifier (0.2 as torchvision).

    Example:
        >>> MobileNetV2(num_classes=10)(torch.randn(1, 3, 64, 64)).shape
        torch.Size([1, 10])
    """

    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        width_mult: float = 1.0,
        dropout: float = 0.2,
        round_nearest: int = 8,
    ) -> None:
        super().__init__()
        self.in_chans = in_chans
        check_common_args(num_classes, in_chans, width_mult, dropout)
        check_int("round_nearest", round_nearest)
        self.num_classes = num_classes
        input_channels = make_divisible(32 * width_mult, round_nearest)
        self.num_features = make_divisible(1280 * max(1.0, width_mult), round_nearest)

        features: List[nn.Module] = [ConvNormAct(in_chans, input_channels, 3, 2, act="relu6")]
        for expand_ratio, channels, repeats, first_stride in MOBILENET_V2_STAGES:
            out_channels = make_divisible(channels * width_mult, round_nearest)
            for index in range(repeats):
                stride = first_stride if index == 0 else 1
                features.append(InvertedResidual(input_channels, out_channels, stride, expand_ratio))
                input_channels = out_channels
        features.append(ConvNormAct(input_channels, self.num_features, 1, act="relu6"))
        self.features = nn.Sequential(*features)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = make_classifier(self.num_features, num_classes, dropout)
        init_mobile_weights(self, linear="normal")


@register_backbone(
    "mobilenet_v2",
    family="cnn",
    paper="Sandler, Howard, Zhu, Zhmoginov, Chen: MobileNetV2: Inverted Residuals and Linear Bottlenecks",
    venue="CVPR",
    year=2018,
    params=3_504_872,
)
def mobilenet_v2(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> MobileNetV2:
    """MobileNetV2 1.0x (torchvision ``mobilenet_v2``: 3,504,872 parameters).

    Example:
        >>> mobilenet_v2(num_classes=0)(torch.randn(1, 3, 64, 64)).shape
        torch.Size([1, 1280])
    """
    return MobileNetV2(num_classes=num_classes, in_chans=in_chans, **kwargs)
