"""DenseNet-121/169/201 (DenseNet-BC).

Paper: Gao Huang, Zhuang Liu, Laurens van der Maaten, Kilian Q. Weinberger, "Densely Connected
Convolutional Networks", CVPR 2017. Table 1 (ImageNet architectures, growth rate k = 32):

* 7x7/2 conv (2k = 64 channels), 3x3/2 max-pool;
* four dense blocks of (6, 12, 24, 16) / (6, 12, 32, 32) / (6, 12, 48, 32) layers for
  DenseNet-121 / 169 / 201. Layer l computes ``x_l = H_l([x_0, x_1, ..., x_{l-1}])`` (Eq. 2) with
  ``H_l`` = BN-ReLU-Conv1x1 (4k channels, the "B" bottleneck) - BN-ReLU-Conv3x3 (k channels);
* transition layers between blocks: BN-ReLU-Conv1x1 halving the channels (compression 0.5, "C")
  then 2x2 average pooling;
* final BN, ReLU, global average pool, linear classifier.

Module names are torchvision's (``features.denseblock1.denselayer1.norm1``...), so torchvision's
``densenet*`` state_dicts load unchanged (timm uses the same names). Old torchvision checkpoints
named the dense-layer parts ``norm.1``, ``conv.2``...; :meth:`DenseNet.convert_external_state_dict`
renames those as torchvision's own loader does.

Reference parameter counts (1000 classes), torchvision's published counts, re-measured here by
building torchvision's models with random weights: densenet121 7,978,856, densenet169 14,149,480,
densenet201 20,013,928.
"""
from __future__ import annotations

import re
from collections import OrderedDict
from typing import Any, Dict, Mapping, Sequence

import torch
import torch.nn as nn

from ..._validate import check_int
from ..layers import ImageBackbone
from ..registry import register_backbone

__all__ = ["DenseLayer", "DenseBlock", "Transition", "DenseNet", "densenet121", "densenet169", "densenet201"]

# legacy torchvision checkpoints: "denselayer1.norm.1.weight" -> "denselayer1.norm1.weight"
_LEGACY_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var|num_batches_tracked))$"
)


class DenseLayer(nn.Module):
    """``H_l``: BN-ReLU-Conv1x1 (``bn_size * growth_rate``) - BN-ReLU-Conv3x3 (``growth_rate``).

    Takes the concatenation of all earlier feature maps and returns only the ``growth_rate`` new
    channels; :class:`DenseBlock` appends them.

    Example:
        >>> DenseLayer(64, growth_rate=32)(torch.randn(1, 64, 8, 8)).shape
        torch.Size([1, 32, 8, 8])
    """

    def __init__(self, num_input_features: int, growth_rate: int, bn_size: int = 4, drop_rate: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(num_input_features)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(num_input_features, bn_size * growth_rate, kernel_size=1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, kernel_size=3, padding=1, bias=False)
        self.dropout = nn.Dropout(drop_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(self.relu1(self.norm1(x)))  # (B, C_in, H, W) -> (B, 4k, H, W)
        out = self.conv2(self.relu2(self.norm2(out)))  # -> (B, k, H, W)
        return self.dropout(out)


class DenseBlock(nn.Module):
    """``num_layers`` dense layers, each fed the concatenation of the block input and every earlier
    layer's output (paper Eq. 2); returns that full concatenation.

    The layers are children ``denselayer1`` ... (torchvision's names) and are called by name, not
    by iterating over the children, so modules attached to the block later (e.g. by
    ``inject_attention``) are not mistaken for dense layers.

    Example:
        >>> DenseBlock(2, 64, growth_rate=32)(torch.randn(1, 64, 8, 8)).shape
        torch.Size([1, 128, 8, 8])
    """

    def __init__(
        self, num_layers: int, num_input_features: int, growth_rate: int, bn_size: int = 4, drop_rate: float = 0.0
    ) -> None:
        super().__init__()
        self.num_layers = num_layers
        for i in range(num_layers):
            layer = DenseLayer(num_input_features + i * growth_rate, growth_rate, bn_size, drop_rate)
            self.add_module(f"denselayer{i + 1}", layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = x
        for i in range(self.num_layers):
            layer = getattr(self, f"denselayer{i + 1}")
            # (B, C_in + i k, H, W) -> (B, C_in + (i + 1) k, H, W)
            features = torch.cat([features, layer(features)], 1)
        return features


class Transition(nn.Sequential):
    """BN-ReLU-Conv1x1 (compression) then 2x2 average pooling, between dense blocks.

    Example:
        >>> Transition(256, 128)(torch.randn(1, 256, 8, 8)).shape
        torch.Size([1, 128, 4, 4])
    """

    def __init__(self, num_input_features: int, num_output_features: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(num_input_features)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(num_input_features, num_output_features, kernel_size=1, bias=False)
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)


class DenseNet(ImageBackbone):
    """DenseNet-BC for ImageNet-sized input.

    Init as torchvision (the official Torch code): Kaiming-normal convs (fan_in), BN scale 1 /
    shift 0, zero linear bias.

    Example:
        >>> model = DenseNet(growth_rate=8, block_config=(1, 1, 1, 1), num_init_features=16, num_classes=3)
        >>> model(torch.randn(1, 3, 64, 64)).shape
        torch.Size([1, 3])
    """

    default_input_size = 224

    def __init__(
        self,
        growth_rate: int = 32,
        block_config: Sequence[int] = (6, 12, 24, 16),
        num_init_features: int = 64,
        bn_size: int = 4,
        drop_rate: float = 0.0,
        num_classes: int = 1000,
        in_chans: int = 3,
    ) -> None:
        super().__init__()
        self.in_chans = in_chans
        check_int("growth_rate", growth_rate)
        check_int("num_init_features", num_init_features)
        check_int("bn_size", bn_size)
        check_int("num_classes", num_classes, minimum=0)
        check_int("in_chans", in_chans)
        if len(block_config) == 0:
            raise ValueError(
                f"block_config must list the layers of at least one dense block, got {list(block_config)!r}"
            )
        for num_layers in block_config:
            check_int("block_config", num_layers)
        if not 0.0 <= drop_rate < 1.0:
            raise ValueError(f"drop_rate must be in [0, 1), got {drop_rate!r}")
        self.num_classes = num_classes

        self.features = nn.Sequential(
            OrderedDict(
                [
                    ("conv0", nn.Conv2d(in_chans, num_init_features, kernel_size=7, stride=2, padding=3, bias=False)),
                    ("norm0", nn.BatchNorm2d(num_init_features)),
                    ("relu0", nn.ReLU(inplace=True)),
                    ("pool0", nn.MaxPool2d(kernel_size=3, stride=2, padding=1)),
                ]
            )
        )
        num_features = num_init_features
        for i, num_layers in enumerate(block_config):
            block = DenseBlock(num_layers, num_features, growth_rate, bn_size, drop_rate)
            self.features.add_module(f"denseblock{i + 1}", block)
            num_features = num_features + num_layers * growth_rate
            if i != len(block_config) - 1:
                self.features.add_module(f"transition{i + 1}", Transition(num_features, num_features // 2))
                num_features = num_features // 2
        self.features.add_module("norm5", nn.BatchNorm2d(num_features))
        self.final_relu = nn.ReLU(inplace=True)
        self.num_features = num_features
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.classifier = nn.Linear(num_features, num_classes) if num_classes > 0 else nn.Identity()

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                nn.init.constant_(m.bias, 0)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_chans, H, W) -> (B, num_features, H/32, W/32), after the final BN-ReLU."""
        return self.final_relu(self.features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.avgpool(self.forward_features(x)), 1)  # -> (B, num_features)
        return self.classifier(x)

    def convert_external_state_dict(
        self, state_dict: Mapping[str, torch.Tensor], source: str
    ) -> Dict[str, torch.Tensor]:
        """Current torchvision / timm keys are ours. Legacy torchvision checkpoints spell the
        dense-layer parts ``norm.1``, ``conv.2``... (renamed, as torchvision's own loader does) and
        predate BN's ``num_batches_tracked`` counter (added as 0, as ``BatchNorm2d`` itself does)."""
        converted: Dict[str, torch.Tensor] = {}
        for key, value in state_dict.items():
            match = _LEGACY_KEY.match(key)
            converted[match.group(1) + match.group(2) if match else key] = value
        for key in list(converted):
            if key.endswith(".running_mean"):
                counter = key[: -len("running_mean")] + "num_batches_tracked"
                converted.setdefault(counter, torch.tensor(0, dtype=torch.long))
        return converted


_PAPER = "Huang, Liu, van der Maaten, Weinberger: Densely Connected Convolutional Networks"


@register_backbone("densenet121", family="cnn", paper=_PAPER, venue="CVPR", year=2017, params=7_978_856)
def densenet121(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> DenseNet:
    """DenseNet-121 (k = 32, blocks (6, 12, 24, 16)); 7,978,856 parameters as torchvision.

    Example:
        >>> densenet121(num_classes=10)(torch.randn(1, 3, 64, 64)).shape
        torch.Size([1, 10])
    """
    return DenseNet(32, (6, 12, 24, 16), 64, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_backbone("densenet169", family="cnn", paper=_PAPER, venue="CVPR", year=2017, params=14_149_480)
def densenet169(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> DenseNet:
    """DenseNet-169 (k = 32, blocks (6, 12, 32, 32)); 14,149,480 parameters as torchvision.

    Example:
        >>> densenet169().num_features
        1664
    """
    return DenseNet(32, (6, 12, 32, 32), 64, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_backbone("densenet201", family="cnn", paper=_PAPER, venue="CVPR", year=2017, params=20_013_928)
def densenet201(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> DenseNet:
    """DenseNet-201 (k = 32, blocks (6, 12, 48, 32)); 20,013,928 parameters as torchvision.

    Example:
        >>> densenet201().num_features
        1920
    """
    return DenseNet(32, (6, 12, 48, 32), 64, num_classes=num_classes, in_chans=in_chans, **kwargs)
