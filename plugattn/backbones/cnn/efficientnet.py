"""EfficientNet-B0 and its compound-scaled B1-B3.

Paper: Mingxing Tan, Quoc V. Le, "EfficientNet: Rethinking Model Scaling for Convolutional Neural
Networks", ICML 2019.

Table 1 of the paper (B0): a 3x3 stride-2 conv to 32, seven MBConv stages
(expansion, kernel, stride, output channels, layers)
``(1,3,1,16,1) (6,3,2,24,2) (6,5,2,40,2) (6,3,2,80,3) (6,5,1,112,3) (6,5,2,192,4) (6,3,1,320,1)``,
a 1x1 conv to 1280, pooling and the classifier. Every MBConv has squeeze-excitation with ratio 0.25
of the block's *input* width and the swish (SiLU) activation. Eq. 3 (compound scaling): depth
``d = alpha^phi``, width ``w = beta^phi``; the released coefficients are
B1 (w 1.0, d 1.1), B2 (w 1.1, d 1.2), B3 (w 1.2, d 1.4) with dropout 0.2/0.2/0.3/0.3;
widths round to multiples of 8 and layer counts round up. Stochastic depth (survival decaying
linearly to 0.8 over the blocks) regularises training, implemented by :class:`layers.DropPath`.

Built-in SE: :class:`plugattn.attention.se.SELayer` with
``hidden_channels=max(1, C_in // 4)``, ``act="silu"``, ``gate="sigmoid"``.

Module names are torchvision's, so ``torchvision.models.efficientnet_b0().state_dict()`` loads by
name. Reference counts (1000 classes, measured by building the torchvision models with random
weights): b0 5,288,548; b1 7,794,184; b2 9,109,994; b3 12,233,232.
"""
from __future__ import annotations

import math
from typing import Any, Callable, List, NamedTuple, Optional, Sequence

import torch
import torch.nn as nn

from ..._validate import check_choice, check_positive_float
from ..layers import (
    ConvNormAct, MBConv, NormLayer, PooledClassifierNet, check_common_args, check_probability, init_mobile_weights,
    make_classifier, make_divisible,
)
from ..registry import register_backbone

__all__ = [
    "StageConfig",
    "EfficientNet",
    "efficientnet_mbconv",
    "efficientnet_b0",
    "efficientnet_b1",
    "efficientnet_b2",
    "efficientnet_b3",
]


def efficientnet_mbconv(
    in_channels: int,
    out_channels: int,
    *,
    kernel_size: int,
    stride: int,
    expand_ratio: float,
    drop_path_rate: float,
    norm: NormLayer,
) -> MBConv:
    """EfficientNet's MBConv: SiLU, expansion rounded to a multiple of 8, SE of width ``max(1, C_in // 4)``.

    Example:
        >>> block = efficientnet_mbconv(16, 24, kernel_size=3, stride=2, expand_ratio=6,
        ...                             drop_path_rate=0.0, norm=nn.BatchNorm2d)
        >>> block(torch.randn(2, 16, 8, 8)).shape
        torch.Size([2, 24, 4, 4])
    """
    return MBConv(
        in_channels,
        out_channels,
        kernel_size=kernel_size,
        stride=stride,
        expanded_channels=make_divisible(in_channels * expand_ratio, 8),
        act="silu",
        se_hidden_channels=max(1, in_channels // 4),
        se_act="silu",
        se_gate="sigmoid",
        drop_path_rate=drop_path_rate,
        norm=norm,
    )


class StageConfig(NamedTuple):
    """One stage (a row of Table 1): block builder, expansion, kernel, first stride, widths, layers."""

    block: Callable[..., nn.Module]
    expand_ratio: float
    kernel_size: int
    stride: int
    in_channels: int
    out_channels: int
    layers: int


# Table 1 of the EfficientNet paper (B0)
EFFICIENTNET_B0_STAGES = [
    StageConfig(efficientnet_mbconv, 1, 3, 1, 32, 16, 1),
    StageConfig(efficientnet_mbconv, 6, 3, 2, 16, 24, 2),
    StageConfig(efficientnet_mbconv, 6, 5, 2, 24, 40, 2),
    StageConfig(efficientnet_mbconv, 6, 3, 2, 40, 80, 3),
    StageConfig(efficientnet_mbconv, 6, 5, 1, 80, 112, 3),
    StageConfig(efficientnet_mbconv, 6, 5, 2, 112, 192, 4),
    StageConfig(efficientnet_mbconv, 6, 3, 1, 192, 320, 1),
]


class EfficientNet(PooledClassifierNet):
    """EfficientNet (V1, and V2 via :mod:`plugattn.backbones.cnn.efficientnetv2`), torchvision layout:
    ``features`` = [stem, one ``Sequential`` per stage, 1x1 head conv], ``avgpool``, ``classifier``.

    Args:
        stages: stage table (``EFFICIENTNET_B0_STAGES`` or the V2 table).
        num_classes: classifier outputs (0: identity head, ``forward`` returns pooled features).
        in_chans: input image channels.
        width_mult / depth_mult: compound-scaling coefficients (Eq. 3).
        dropout: dropout before the classifier.
        drop_path_rate: stochastic-depth rate of the last block (block i of N uses rate * i / N).
        last_channel: width of the head conv (``None``: 4x the last stage's width, 1280 for B0).
        norm: normalisation layer factory.
        act: activation of the stem and head convs (``"silu"``; MnasNet uses ``"relu"``).
        init: linear-layer init of :func:`init_mobile_weights` (``"uniform"`` as torchvision;
            ``"goog"`` as timm / the TensorFlow reference, with grouped-conv fan-out).

    Example:
        >>> EfficientNet(EFFICIENTNET_B0_STAGES, num_classes=10)(torch.randn(1, 3, 64, 64)).shape
        torch.Size([1, 10])
    """

    def __init__(
        self,
        stages: Sequence[StageConfig],
        num_classes: int = 1000,
        in_chans: int = 3,
        width_mult: float = 1.0,
        depth_mult: float = 1.0,
        dropout: float = 0.2,
        drop_path_rate: float = 0.2,
        last_channel: Optional[int] = None,
        norm: NormLayer = nn.BatchNorm2d,
        act: str = "silu",
        init: str = "uniform",
    ) -> None:
        super().__init__()
        self.in_chans = in_chans
        check_common_args(num_classes, in_chans, width_mult, dropout)
        check_positive_float("depth_mult", depth_mult)
        check_probability("drop_path_rate", drop_path_rate)
        if not stages:
            raise ValueError("stages must list at least one StageConfig, got an empty sequence")
        self.num_classes = num_classes

        def scaled_width(channels: int) -> int:
            return make_divisible(channels * width_mult, 8)

        def scaled_depth(layers: int) -> int:
            return int(math.ceil(layers * depth_mult))

        stem_channels = scaled_width(stages[0].in_channels)
        layers: List[nn.Module] = [ConvNormAct(in_chans, stem_channels, 3, 2, act=act, norm=norm)]
        total_blocks = sum(scaled_depth(stage.layers) for stage in stages)
        block_index = 0
        for stage in stages:
            in_channels = scaled_width(stage.in_channels)
            out_channels = scaled_width(stage.out_channels)
            blocks: List[nn.Module] = []
            for repeat in range(scaled_depth(stage.layers)):
                blocks.append(
                    stage.block(
                        in_channels if repeat == 0 else out_channels,
                        out_channels,
                        kernel_size=stage.kernel_size,
                        stride=stage.stride if repeat == 0 else 1,
                        expand_ratio=stage.expand_ratio,
                        # stochastic depth grows linearly with the block's depth
                        drop_path_rate=drop_path_rate * block_index / total_blocks,
                        norm=norm,
                    )
                )
                block_index += 1
            layers.append(nn.Sequential(*blocks))
        last_stage_channels = scaled_width(stages[-1].out_channels)
        self.num_features = last_channel if last_channel is not None else 4 * last_stage_channels
        layers.append(ConvNormAct(last_stage_channels, self.num_features, 1, act=act, norm=norm))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = make_classifier(self.num_features, num_classes, dropout)
        check_choice("init", init, ("uniform", "goog"))
        init_mobile_weights(self, linear=init, group_fan_out=init == "goog")


_PAPER = "Tan, Le: EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks"


def _efficientnet_v1(
    default_width: float, default_depth: float, default_dropout: float, num_classes: int, in_chans: int, **kwargs: Any
) -> EfficientNet:
    """B0 with the variant's compound-scaling coefficients and dropout, each overridable by keyword."""
    kwargs.setdefault("width_mult", default_width)
    kwargs.setdefault("depth_mult", default_depth)
    kwargs.setdefault("dropout", default_dropout)
    return EfficientNet(EFFICIENTNET_B0_STAGES, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_backbone("efficientnet_b0", family="cnn", paper=_PAPER, venue="ICML", year=2019, params=5_288_548)
def efficientnet_b0(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> EfficientNet:
    """EfficientNet-B0 (torchvision ``efficientnet_b0``: 5,288,548 parameters).

    Example:
        >>> efficientnet_b0(num_classes=10)(torch.randn(1, 3, 64, 64)).shape
        torch.Size([1, 10])
    """
    return _efficientnet_v1(1.0, 1.0, 0.2, num_classes, in_chans, **kwargs)


@register_backbone("efficientnet_b1", family="cnn", paper=_PAPER, venue="ICML", year=2019, params=7_794_184)
def efficientnet_b1(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> EfficientNet:
    """EfficientNet-B1: width 1.0, depth 1.1 (torchvision ``efficientnet_b1``: 7,794,184 parameters).

    Example:
        >>> efficientnet_b1(num_classes=10)(torch.randn(1, 3, 64, 64)).shape
        torch.Size([1, 10])
    """
    return _efficientnet_v1(1.0, 1.1, 0.2, num_classes, in_chans, **kwargs)


@register_backbone("efficientnet_b2", family="cnn", paper=_PAPER, venue="ICML", year=2019, params=9_109_994)
def efficientnet_b2(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> EfficientNet:
    """EfficientNet-B2: width 1.1, depth 1.2 (torchvision ``efficientnet_b2``: 9,109,994 parameters).

    Example:
        >>> efficientnet_b2(num_classes=10)(torch.randn(1, 3, 64, 64)).shape
        torch.Size([1, 10])
    """
    return _efficientnet_v1(1.1, 1.2, 0.3, num_classes, in_chans, **kwargs)


@register_backbone("efficientnet_b3", family="cnn", paper=_PAPER, venue="ICML", year=2019, params=12_233_232)
def efficientnet_b3(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> EfficientNet:
    """EfficientNet-B3: width 1.2, depth 1.4 (torchvision ``efficientnet_b3``: 12,233,232 parameters).

    Example:
        >>> efficientnet_b3(num_classes=10)(torch.randn(1, 3, 64, 64)).shape
        torch.Size([1, 10])
    """
    return _efficientnet_v1(1.2, 1.4, 0.3, num_classes, in_chans, **kwargs)
