"""MnasNet-B1 and MnasNet-A1 (1.0x).

Paper: Mingxing Tan, Bo Chen, Ruoming Pang, Vijay Vasudevan, Mark Sandler, Andrew Howard, Quoc V. Le,
"MnasNet: Platform-Aware Neural Architecture Search for Mobile", CVPR 2019.

Fig. 7(a) of the paper (MnasNet-A1): a 3x3 stride-2 conv to 32, SepConv (k3) to 16, then
MBConv stages (expansion, kernel, stride, output channels, layers, SE)
``(6,3,2,24,2,-) (3,5,2,40,3,SE) (6,3,2,80,4,-) (6,3,1,112,2,SE) (6,5,2,160,3,SE) (6,3,1,320,1,-)``;
squeeze-excitation (ratio 0.25 of the block's input width, ReLU, sigmoid gate) sits after the
depthwise conv. MnasNet-B1 is the SE-free model searched in the paper's first version
(``(3,3,2,24,3) (3,5,2,40,3) (6,5,2,80,3) (6,3,1,96,2) (6,5,2,192,4) (6,3,1,320,1)``), the one
torchvision ships as ``mnasnet1_0``. Both end with a 1x1 conv to 1280, pooling, dropout 0.2 and the
classifier; all activations are ReLU, MBConv blocks keep a linear projection and add the identity
when the shape is kept.

The skeleton is :class:`plugattn.backbones.cnn.efficientnet.EfficientNet` (EfficientNet-B0 came out of
the MnasNet search space) with ReLU, no stochastic depth and the TensorFlow reference init.
Weights: timm's ``mnasnet_100`` (B1) and ``semnasnet_100`` (A1) load through
``convert_external_state_dict`` (BatchNorm defaults eps 1e-5 / momentum 0.1 as in timm).
Reference counts (1000 classes, measured by building the models with random weights): timm
``mnasnet_100`` 4,383,312 (equal to torchvision ``mnasnet1_0``), timm ``semnasnet_100`` 3,887,038
(the paper's Table 1 rounds A1 to 3.9M).
"""
from __future__ import annotations

import re
from functools import partial
from typing import Any, Dict, Mapping

import torch
import torch.nn as nn

from ..layers import MBConv, NormLayer
from .efficientnet import EfficientNet, StageConfig
from ..registry import register_backbone
from ..weights import pair_keys_in_order

__all__ = ["MBConv", "MnasNet", "mnasnet_b1", "mnasnet_a1"]


def mnasnet_mbconv(
    in_channels: int,
    out_channels: int,
    *,
    kernel_size: int,
    stride: int,
    expand_ratio: float,
    drop_path_rate: float,
    norm: NormLayer,
    use_se: bool = False,
) -> MBConv:
    """MnasNet's MBConv / SepConv (expand_ratio 1): ReLU; with ``use_se`` an SE of width ``max(1, C_in // 4)``.

    Example:
        >>> mnasnet_mbconv(24, 40, kernel_size=5, stride=2, expand_ratio=3, drop_path_rate=0.0,
        ...                norm=nn.BatchNorm2d, use_se=True)(torch.randn(2, 24, 8, 8)).shape
        torch.Size([2, 40, 4, 4])
    """
    return MBConv(
        in_channels,
        out_channels,
        kernel_size=kernel_size,
        stride=stride,
        expanded_channels=int(in_channels * expand_ratio),
        act="relu",
        se_hidden_channels=max(1, in_channels // 4) if use_se else None,
        se_act="relu",
        se_gate="sigmoid",
        drop_path_rate=drop_path_rate,
        norm=norm,
    )


mnasnet_mbconv_se = partial(mnasnet_mbconv, use_se=True)

# Fig. 7(a): MnasNet-A1
MNASNET_A1_STAGES = [
    StageConfig(mnasnet_mbconv, 1, 3, 1, 32, 16, 1),
    StageConfig(mnasnet_mbconv, 6, 3, 2, 16, 24, 2),
    StageConfig(mnasnet_mbconv_se, 3, 5, 2, 24, 40, 3),
    StageConfig(mnasnet_mbconv, 6, 3, 2, 40, 80, 4),
    StageConfig(mnasnet_mbconv_se, 6, 3, 1, 80, 112, 2),
    StageConfig(mnasnet_mbconv_se, 6, 5, 2, 112, 160, 3),
    StageConfig(mnasnet_mbconv, 6, 3, 1, 160, 320, 1),
]

# MnasNet-B1 (no SE), as torchvision mnasnet1_0 / timm mnasnet_100
MNASNET_B1_STAGES = [
    StageConfig(mnasnet_mbconv, 1, 3, 1, 32, 16, 1),
    StageConfig(mnasnet_mbconv, 3, 3, 2, 16, 24, 3),
    StageConfig(mnasnet_mbconv, 3, 5, 2, 24, 40, 3),
    StageConfig(mnasnet_mbconv, 6, 5, 2, 40, 80, 3),
    StageConfig(mnasnet_mbconv, 6, 3, 1, 80, 96, 2),
    StageConfig(mnasnet_mbconv, 6, 5, 2, 96, 192, 4),
    StageConfig(mnasnet_mbconv, 6, 3, 1, 192, 320, 1),
]

_TIMM_TOP_LEVEL = [
    (r"^conv_stem\.", "features.0.0."),
    (r"^bn1\.", "features.0.1."),
    (r"^classifier\.", "classifier.1."),
]


def _timm_block_names(block: MBConv) -> Dict[str, str]:
    """timm's names of one MBConv's layers -> our ``block.<index>`` names."""
    index = 0
    names: Dict[str, str] = {}
    if block.has_expand:
        # timm InvertedResidual: conv_pw/bn1 expand, conv_dw/bn2 depthwise, conv_pwl/bn3 project
        names.update({"conv_pw": f"block.{index}.0", "bn1": f"block.{index}.1"})
        index += 1
        names.update({"conv_dw": f"block.{index}.0", "bn2": f"block.{index}.1"})
        project = ("conv_pwl", "bn3")
    else:
        # timm DepthwiseSeparableConv: conv_dw/bn1 depthwise, conv_pw/bn2 project
        names.update({"conv_dw": f"block.{index}.0", "bn1": f"block.{index}.1"})
        project = ("conv_pw", "bn2")
    index += 1
    if block.has_se:
        names.update({"se.conv_reduce": f"block.{index}.fc1", "se.conv_expand": f"block.{index}.fc2"})
        index += 1
    names.update({project[0]: f"block.{index}.0", project[1]: f"block.{index}.1"})
    return names


class MnasNet(EfficientNet):
    """MnasNet (Tan et al., CVPR 2019): the EfficientNet skeleton with ReLU, no stochastic depth and
    the TensorFlow reference init; loads timm ``mnasnet_100`` / ``semnasnet_100`` weights.

    Example:
        >>> MnasNet(MNASNET_A1_STAGES, num_classes=10)(torch.randn(1, 3, 64, 64)).shape
        torch.Size([1, 10])
    """

    def __init__(self, stages=MNASNET_A1_STAGES, num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> None:
        kwargs.setdefault("dropout", 0.2)
        kwargs.setdefault("drop_path_rate", 0.0)
        kwargs.setdefault("act", "relu")
        kwargs.setdefault("init", "goog")
        kwargs.setdefault("last_channel", 1280)
        super().__init__(stages, num_classes=num_classes, in_chans=in_chans, **kwargs)

    def convert_external_state_dict(self, state_dict: Mapping[str, torch.Tensor], source: str) -> Dict[str, torch.Tensor]:
        """Rename a timm ``mnasnet_*`` / ``semnasnet_*`` state_dict, or torchvision's ``mnasnet1_0``
        (B1; one flat ``layers`` Sequential in the same order as ours), to this model's names."""
        if source == "torchvision":
            return pair_keys_in_order(state_dict, self)
        head_index = len(self.features) - 1
        rules = _TIMM_TOP_LEVEL + [(r"^conv_head\.", f"features.{head_index}.0."), (r"^bn2\.", f"features.{head_index}.1.")]
        converted: Dict[str, torch.Tensor] = {}
        block_key = re.compile(r"^blocks\.(\d+)\.(\d+)\.(.+)\.(weight|bias|running_mean|running_var|num_batches_tracked)$")
        for key, value in state_dict.items():
            match = block_key.match(key)
            if match is not None:
                stage, index, layer, leaf = match.groups()
                stage_module = self.features[int(stage) + 1] if int(stage) + 1 < head_index else None
                if isinstance(stage_module, nn.Sequential) and int(index) < len(stage_module):
                    names = _timm_block_names(stage_module[int(index)])
                    if layer in names:
                        key = f"features.{int(stage) + 1}.{index}.{names[layer]}.{leaf}"
                converted[key] = value
                continue
            for pattern, replacement in rules:
                if re.match(pattern, key):
                    key = re.sub(pattern, replacement, key)
                    break
            converted[key] = value
        return converted


_PAPER = "Tan, Chen, Pang, Vasudevan, Sandler, Howard, Le: MnasNet: Platform-Aware Neural Architecture Search for Mobile"


@register_backbone(
    "mnasnet_b1", family="cnn", aliases=("mnasnet_100",), paper=_PAPER, venue="CVPR", year=2019,
    params=4_383_312,
)
def mnasnet_b1(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> MnasNet:
    """MnasNet-B1 1.0x (timm ``mnasnet_100`` / torchvision ``mnasnet1_0``: 4,383,312 parameters).

    Example:
        >>> mnasnet_b1(num_classes=10)(torch.randn(1, 3, 64, 64)).shape
        torch.Size([1, 10])
    """
    return MnasNet(MNASNET_B1_STAGES, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_backbone(
    "mnasnet_a1", family="cnn", aliases=("semnasnet_100",), paper=_PAPER, venue="CVPR", year=2019, params=3_887_038
)
def mnasnet_a1(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> MnasNet:
    """MnasNet-A1 1.0x with SE (timm ``semnasnet_100``: 3,887,038 parameters).

    Example:
        >>> mnasnet_a1(num_classes=10)(torch.randn(1, 3, 64, 64)).shape
        torch.Size([1, 10])
    """
    return MnasNet(MNASNET_A1_STAGES, num_classes=num_classes, in_chans=in_chans, **kwargs)
