"""EfficientNetV2-S.

Paper: Mingxing Tan, Quoc V. Le, "EfficientNetV2: Smaller Models and Faster Training", ICML 2021.

Table 4 of the paper (EfficientNetV2-S): a 3x3 stride-2 conv to 24, then stages
(block, expansion, kernel, stride, output channels, layers)
``Fused-MBConv (1,3,1,24,2) (4,3,2,48,4) (4,3,2,64,4)``,
``MBConv+SE0.25 (4,3,2,128,6) (6,3,1,160,9) (6,3,2,256,15)``, a 1x1 conv to 1280, pooling and the
classifier. Fused-MBConv (Fig. 2) replaces MBConv's 1x1 expansion + depthwise conv by one regular
3x3 conv (followed by a linear 1x1 projection when it expands); MBConv stages keep SE (ratio 0.25 of
the input width) and SiLU. BatchNorm eps 1e-3 as the reference.

Module names are torchvision's, so ``torchvision.models.efficientnet_v2_s().state_dict()`` loads by
name. Reference count: torchvision ``efficientnet_v2_s`` has 21,458,488 parameters (1000 classes,
measured by building it with random weights); the paper's Table 7 rounds it to 22M.
"""
from __future__ import annotations

from functools import partial
from typing import Any, Callable, List

import torch
import torch.nn as nn

from ..layers import ConvNormAct, StochasticResidual, check_block_args, check_probability, make_divisible
from .efficientnet import EfficientNet, StageConfig, efficientnet_mbconv
from ..registry import register_backbone

__all__ = ["FusedMBConv", "efficientnet_v2_s"]


class FusedMBConv(StochasticResidual):
    """Fused-MBConv (EfficientNetV2, Fig. 2): kxk conv (+ SiLU) expanding to ``C_in * t``, then a
    linear 1x1 projection; with ``t = 1`` a single kxk conv + SiLU. Identity shortcut with stochastic
    depth when stride is 1 and the width is kept.

    Example:
        >>> FusedMBConv(24, 48, kernel_size=3, stride=2, expand_ratio=4)(torch.randn(2, 24, 8, 8)).shape
        torch.Size([2, 48, 4, 4])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        kernel_size: int = 3,
        stride: int = 1,
        expand_ratio: float = 4,
        drop_path_rate: float = 0.0,
        norm: Callable[[int], nn.Module] = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        check_block_args(in_channels, out_channels, stride)
        check_probability("drop_path_rate", drop_path_rate)
        expanded = make_divisible(in_channels * expand_ratio, 8)
        layers: List[nn.Module] = []
        if expanded != in_channels:
            # (B, C_in, H, W) -> (B, C_exp, H/s, W/s) -> (B, C_out, H/s, W/s)
            layers.append(ConvNormAct(in_channels, expanded, kernel_size, stride, act="silu", norm=norm))
            layers.append(ConvNormAct(expanded, out_channels, 1, act=None, norm=norm))
        else:
            layers.append(ConvNormAct(in_channels, out_channels, kernel_size, stride, act="silu", norm=norm))
        self.set_block(layers, in_channels, out_channels, stride, drop_path_rate)


# Table 4 of the EfficientNetV2 paper (V2-S)
EFFICIENTNET_V2_S_STAGES = [
    StageConfig(FusedMBConv, 1, 3, 1, 24, 24, 2),
    StageConfig(FusedMBConv, 4, 3, 2, 24, 48, 4),
    StageConfig(FusedMBConv, 4, 3, 2, 48, 64, 4),
    StageConfig(efficientnet_mbconv, 4, 3, 2, 64, 128, 6),
    StageConfig(efficientnet_mbconv, 6, 3, 1, 128, 160, 9),
    StageConfig(efficientnet_mbconv, 6, 3, 2, 160, 256, 15),
]


@register_backbone(
    "efficientnet_v2_s",
    family="cnn",
    paper="Tan, Le: EfficientNetV2: Smaller Models and Faster Training",
    venue="ICML",
    year=2021,
    params=21_458_488,
)
def efficientnet_v2_s(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> EfficientNet:
    """EfficientNetV2-S (torchvision ``efficientnet_v2_s``: 21,458,488 parameters).

    Example:
        >>> efficientnet_v2_s(num_classes=10)(torch.randn(1, 3, 64, 64)).shape
        torch.Size([1, 10])
    """
    kwargs.setdefault("dropout", 0.2)
    kwargs.setdefault("norm", partial(nn.BatchNorm2d, eps=1e-3))
    return EfficientNet(EFFICIENTNET_V2_S_STAGES, num_classes=num_classes, in_chans=in_chans, last_channel=1280, **kwargs)
