"""MobileNetV3-Large and MobileNetV3-Small.

Paper: Andrew Howard, Mark Sandler, Grace Chu, Liang-Chieh Chen, Bo Chen, Mingxing Tan, Weijun Wang,
Yukun Zhu, Ruoming Pang, Vijay Vasudevan, Quoc V. Le, Hartwig Adam, "Searching for MobileNetV3",
ICCV 2019.

Table 1 (Large) and Table 2 (Small) list every bneck block as (kernel, expansion size, output
channels, SE, nonlinearity RE/HS, stride); the stem is a 3x3 stride-2 conv to 16 with h-swish, the
head a 1x1 conv to 960 (Large) / 576 (Small) with h-swish, pooling, a 1x1 "conv" (here a Linear,
as torchvision) to 1280 / 1024 with h-swish, dropout and the classifier. Sec. 5.3: the
squeeze-excite bottleneck is fixed to 1/4 of the expansion width (rounded to a multiple of 8 like
the reference code) with a ReLU and a hard-sigmoid gate, placed after the depthwise conv.
BatchNorm uses eps=1e-3, momentum=0.01 like the TensorFlow reference and torchvision.

Built-in SE: :class:`plugattn.attention.se.SELayer` with
``hidden_channels=make_divisible(C_exp / 4, 8)``, ``act="relu"``, ``gate="hardsigmoid"``.

Module names are torchvision's, so ``torchvision.models.mobilenet_v3_large().state_dict()`` loads by
name. Reference counts (1000 classes, measured by building the torchvision models with random
weights): ``mobilenet_v3_large`` 5,483,032 and ``mobilenet_v3_small`` 2,542,856.
"""
from __future__ import annotations

from functools import partial
from typing import Any, List, NamedTuple

import torch
import torch.nn as nn

from ..layers import ConvNormAct, MBConv, PooledClassifierNet, check_common_args, init_mobile_weights, make_divisible
from ..registry import register_backbone

__all__ = ["InvertedResidual", "MobileNetV3", "mobilenet_v3_large", "mobilenet_v3_small"]


class BneckConfig(NamedTuple):
    """One row of the paper's Table 1 / Table 2."""

    in_channels: int
    kernel_size: int
    expanded_channels: int
    out_channels: int
    use_se: bool
    act: str  # "relu" (RE) or "hardswish" (HS)
    stride: int


RE, HS = "relu", "hardswish"

# Table 1: MobileNetV3-Large
LARGE_BLOCKS = [
    BneckConfig(16, 3, 16, 16, False, RE, 1),
    BneckConfig(16, 3, 64, 24, False, RE, 2),
    BneckConfig(24, 3, 72, 24, False, RE, 1),
    BneckConfig(24, 5, 72, 40, True, RE, 2),
    BneckConfig(40, 5, 120, 40, True, RE, 1),
    BneckConfig(40, 5, 120, 40, True, RE, 1),
    BneckConfig(40, 3, 240, 80, False, HS, 2),
    BneckConfig(80, 3, 200, 80, False, HS, 1),
    BneckConfig(80, 3, 184, 80, False, HS, 1),
    BneckConfig(80, 3, 184, 80, False, HS, 1),
    BneckConfig(80, 3, 480, 112, True, HS, 1),
    BneckConfig(112, 3, 672, 112, True, HS, 1),
    BneckConfig(112, 5, 672, 160, True, HS, 2),
    BneckConfig(160, 5, 960, 160, True, HS, 1),
    BneckConfig(160, 5, 960, 160, True, HS, 1),
]

# Table 2: MobileNetV3-Small
SMALL_BLOCKS = [
    BneckConfig(16, 3, 16, 16, True, RE, 2),
    BneckConfig(16, 3, 72, 24, False, RE, 2),
    BneckConfig(24, 3, 88, 24, False, RE, 1),
    BneckConfig(24, 5, 96, 40, True, HS, 2),
    BneckConfig(40, 5, 240, 40, True, HS, 1),
    BneckConfig(40, 5, 240, 40, True, HS, 1),
    BneckConfig(40, 5, 120, 48, True, HS, 1),
    BneckConfig(48, 5, 144, 48, True, HS, 1),
    BneckConfig(48, 5, 288, 96, True, HS, 2),
    BneckConfig(96, 5, 576, 96, True, HS, 1),
    BneckConfig(96, 5, 576, 96, True, HS, 1),
]


def se_hidden_width(expanded_channels: int) -> int:
    """Squeeze width of the MobileNetV3 SE: a quarter of the expansion, rounded to a multiple of 8.

    Example:
        >>> se_hidden_width(72), se_hidden_width(960)
        (24, 240)
    """
    return make_divisible(expanded_channels / 4, 8)


class InvertedResidual(MBConv):
    """MobileNetV3 bneck (paper Fig. 4): MBConv with RE/HS activation and an optional hard-sigmoid SE
    of width ``make_divisible(C_exp / 4, 8)``.

    Example:
        >>> InvertedResidual(24, 40, kernel_size=5, stride=2, expanded_channels=72, use_se=True)(
        ...     torch.randn(2, 24, 16, 16)).shape
        torch.Size([2, 40, 8, 8])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        kernel_size: int,
        stride: int,
        expanded_channels: int,
        use_se: bool,
        act: str = RE,
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            kernel_size=kernel_size,
            stride=stride,
            expanded_channels=expanded_channels,
            act=act,
            se_hidden_channels=se_hidden_width(expanded_channels) if use_se else None,
            se_act="relu",
            se_gate="hardsigmoid",
            norm=partial(nn.BatchNorm2d, eps=0.001, momentum=0.01),
        )


class MobileNetV3(PooledClassifierNet):
    """MobileNetV3 (Howard et al., ICCV 2019), torchvision layout.

    Args:
        blocks: the bneck table (``LARGE_BLOCKS`` or ``SMALL_BLOCKS``).
        last_channel: width of the hidden linear layer of the head (1280 Large, 1024 Small).
        num_classes: classifier outputs (0: identity in place of the last Linear; ``forward`` then
            returns the ``last_channel`` pre-logits).
        in_chans: input image channels.
        width_mult: channel multiplier (rounded to multiples of 8).
        dropout: dropout before the last Linear (0.2 as the paper).

    Example:
        >>> MobileNetV3(SMALL_BLOCKS, 1024, num_classes=10)(torch.randn(1, 3, 64, 64)).shape
        torch.Size([1, 10])
    """

    def __init__(
        self,
        blocks: List[BneckConfig],
        last_channel: int,
        num_classes: int = 1000,
        in_chans: int = 3,
        width_mult: float = 1.0,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self.in_chans = in_chans
        check_common_args(num_classes, in_chans, width_mult, dropout)
        self.num_classes = num_classes
        norm = partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)

        def scaled(channels: int) -> int:
            return make_divisible(channels * width_mult, 8)

        layers: List[nn.Module] = [ConvNormAct(in_chans, scaled(16), 3, 2, act="hardswish", norm=norm)]
        for row in blocks:
            layers.append(
                InvertedResidual(
                    scaled(row.in_channels),
                    scaled(row.out_channels),
                    kernel_size=row.kernel_size,
                    stride=row.stride,
                    expanded_channels=scaled(row.expanded_channels),
                    use_se=row.use_se,
                    act=row.act,
                )
            )
        last_block_channels = scaled(blocks[-1].out_channels)
        self.num_features = 6 * last_block_channels  # 960 (Large) / 576 (Small)
        layers.append(ConvNormAct(last_block_channels, self.num_features, 1, act="hardswish", norm=norm))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Linear(self.num_features, last_channel),
            nn.Hardswish(inplace=True),
            nn.Dropout(p=dropout, inplace=True),
            nn.Linear(last_channel, num_classes) if num_classes > 0 else nn.Identity(),
        )
        init_mobile_weights(self, linear="normal")


_PAPER = (
    "Howard, Sandler, Chu, Chen, Chen, Tan, Wang, Zhu, Pang, Vasudevan, Le, Adam: Searching for MobileNetV3"
)


@register_backbone("mobilenet_v3_large", family="cnn", paper=_PAPER, venue="ICCV", year=2019, params=5_483_032)
def mobilenet_v3_large(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> MobileNetV3:
    """MobileNetV3-Large 1.0x (torchvision ``mobilenet_v3_large``: 5,483,032 parameters).

    Example:
        >>> mobilenet_v3_large(num_classes=10)(torch.randn(1, 3, 64, 64)).shape
        torch.Size([1, 10])
    """
    return MobileNetV3(LARGE_BLOCKS, 1280, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_backbone("mobilenet_v3_small", family="cnn", paper=_PAPER, venue="ICCV", year=2019, params=2_542_856)
def mobilenet_v3_small(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> MobileNetV3:
    """MobileNetV3-Small 1.0x (torchvision ``mobilenet_v3_small``: 2,542,856 parameters).

    Example:
        >>> mobilenet_v3_small(num_classes=10)(torch.randn(1, 3, 64, 64)).shape
        torch.Size([1, 10])
    """
    return MobileNetV3(SMALL_BLOCKS, 1024, num_classes=num_classes, in_chans=in_chans, **kwargs)
