"""MobileNetV1 (1.0x, 224).

Paper: Andrew G. Howard, Menglong Zhu, Bo Chen, Dmitry Kalenichenko, Weijun Wang, Tobias Weyand,
Marco Andreetto, Hartwig Adam, "MobileNets: Efficient Convolutional Neural Networks for Mobile Vision
Applications", arXiv 1704.04861, 2017.

Table 1 of the paper: a full 3x3 stride-2 conv to 32, then 13 depthwise-separable convs (3x3
depthwise + BN + ReLU, 1x1 pointwise + BN + ReLU; Fig. 3) with output widths / strides
``64/1, 128/2, 128/1, 256/2, 256/1, 512/2, 5 x 512/1, 1024/2, 1024/1``, global average pooling and a
fully connected classifier. (The table's second-to-last row prints stride 2 for the last depthwise
conv; the output stays 7x7, so it is stride 1 as in every reference implementation.) The width
multiplier alpha (Sec. 3.3) scales every width. Table 8 gives 4.2M parameters for 1.0 MobileNet-224.

The paper uses ReLU; the TensorFlow-slim and timm implementations use ReLU6, available as
``act="relu6"``. Module names are timm's (``conv_stem``, ``bn1``, ``blocks.S.B.conv_dw`` ...), so
``timm.create_model("mobilenetv1_100").state_dict()`` loads by name (with ``act="relu6"`` the outputs
match). Reference count: timm ``mobilenetv1_100`` has 4,231,976 parameters (1000 classes, measured
by building it with random weights), Table 8's 4.2M.
"""
from __future__ import annotations

from typing import Any, List

import torch
import torch.nn as nn

from ..layers import (
    ActSpec, ImageBackbone, check_block_args, check_common_args, get_act, init_mobile_weights, make_divisible,
)
from ..registry import register_backbone

__all__ = ["DepthwiseSeparableConv", "MobileNetV1", "mobilenetv1_100"]

# Table 1, grouped into timm's stages: (output width, first stride, repeats)
MOBILENET_V1_STAGES = [
    (64, 1, 1),
    (128, 2, 2),
    (256, 2, 2),
    (512, 2, 6),
    (1024, 2, 2),
]


class DepthwiseSeparableConv(nn.Module):
    """Depthwise-separable conv (paper Fig. 3 right): 3x3 depthwise + BN + act, 1x1 pointwise + BN + act.

    Example:
        >>> DepthwiseSeparableConv(32, 64, stride=2)(torch.randn(2, 32, 8, 8)).shape
        torch.Size([2, 64, 4, 4])
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, act: ActSpec = "relu") -> None:
        super().__init__()
        check_block_args(in_channels, out_channels, stride)
        # (B, C_in, H, W) -> (B, C_in, H/s, W/s): one 3x3 filter per channel
        self.conv_dw = nn.Conv2d(in_channels, in_channels, 3, stride, 1, groups=in_channels, bias=False)
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.act1 = get_act(act, inplace=True)
        # (B, C_in, H/s, W/s) -> (B, C_out, H/s, W/s): mixes channels
        self.conv_pw = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.act2 = get_act(act, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.bn1(self.conv_dw(x)))
        return self.act2(self.bn2(self.conv_pw(x)))


class MobileNetV1(ImageBackbone):
    """MobileNetV1 (Howard et al., 2017), timm layout.

    Args:
        num_classes: classifier outputs (0: identity head, ``forward`` returns pooled features).
        in_chans: input image channels.
        width_mult: the paper's width multiplier alpha (widths rounded to multiples of 8).
        act: ``"relu"`` (paper) or ``"relu6"`` (TF-slim / timm).
        dropout: dropout before the classifier (timm's default 0).

    Example:
        >>> MobileNetV1(num_classes=10)(torch.randn(1, 3, 64, 64)).shape
        torch.Size([1, 10])
    """

    default_input_size = 224

    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        width_mult: float = 1.0,
        act: ActSpec = "relu",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.in_chans = in_chans
        check_common_args(num_classes, in_chans, width_mult, dropout)
        self.num_classes = num_classes
        stem_channels = make_divisible(32 * width_mult, 8)
        self.conv_stem = nn.Conv2d(in_chans, stem_channels, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_channels)
        self.act1 = get_act(act, inplace=True)
        stages: List[nn.Module] = []
        in_channels = stem_channels
        for width, first_stride, repeats in MOBILENET_V1_STAGES:
            out_channels = make_divisible(width * width_mult, 8)
            blocks = []
            for index in range(repeats):
                blocks.append(DepthwiseSeparableConv(in_channels, out_channels, first_stride if index == 0 else 1, act))
                in_channels = out_channels
            stages.append(nn.Sequential(*blocks))
        self.blocks = nn.Sequential(*stages)
        self.num_features = in_channels
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(p=dropout)
        self.classifier = nn.Linear(in_channels, num_classes) if num_classes > 0 else nn.Identity()
        init_mobile_weights(self, linear="goog", group_fan_out=True)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_chans, H, W) -> (B, 1024, H/32, W/32)."""
        x = self.act1(self.bn1(self.conv_stem(x)))
        return self.blocks(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.flatten(self.avgpool(x), 1)  # (B, C, H, W) -> (B, C)
        return self.classifier(self.dropout(pooled))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@register_backbone(
    "mobilenetv1_100",
    family="cnn",
    aliases=("mobilenet_v1",),
    paper="Howard, Zhu, Chen, Kalenichenko, Wang, Weyand, Andreetto, Adam: MobileNets: Efficient "
    "Convolutional Neural Networks for Mobile Vision Applications",
    venue="arXiv",
    year=2017,
    params=4_231_976,
)
def mobilenetv1_100(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> MobileNetV1:
    """MobileNetV1 1.0x (timm ``mobilenetv1_100``: 4,231,976 parameters; paper Table 8: 4.2M).

    Example:
        >>> mobilenetv1_100(num_classes=10)(torch.randn(1, 3, 64, 64)).shape
        torch.Size([1, 10])
    """
    return MobileNetV1(num_classes=num_classes, in_chans=in_chans, **kwargs)
