"""Pieces shared by the mobile CNNs (MobileNetV1/V2/V3, MnasNet, EfficientNet(V2), MobileNeXt, GhostNet):
argument checks, the pooled classifier head, and the reference implementations' weight init.

Not a model file (the leading underscore keeps it out of the backbone auto-import).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from ..._validate import check_choice, check_int, check_positive_float
from .core import ImageBackbone

LINEAR_INITS = ("normal", "uniform", "goog", "default")


def check_common_args(num_classes: int, in_chans: int, width_mult: float = 1.0, dropout: float = 0.0) -> None:
    """Raise ``ValueError`` for a bad class count, input-channel count, width multiplier or dropout rate.

    Example:
        >>> check_common_args(1000, 3, 1.0, 0.2)
    """
    check_int("num_classes", num_classes, minimum=0)
    check_int("in_chans", in_chans, minimum=1)
    check_positive_float("width_mult", width_mult)
    check_probability("dropout", dropout)


def check_probability(name: str, value: object) -> float:
    """Return ``value`` if it is a number in [0, 1), else raise ``ValueError`` naming ``name``.

    Example:
        >>> check_probability("drop_path_rate", 0.2)
        0.2
    """
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= value < 1.0
    if not ok:
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
    return float(value)


def make_classifier(in_features: int, num_classes: int, dropout: float = 0.0) -> nn.Sequential:
    """``Sequential(Dropout, Linear)`` as torchvision's mobile models name it (``classifier.1`` is the
    Linear); ``num_classes=0`` puts an identity in place of the Linear, so the model returns pooled features.

    Example:
        >>> make_classifier(1280, 10, 0.2)(torch.zeros(2, 1280)).shape
        torch.Size([2, 10])
    """
    head = nn.Linear(in_features, num_classes) if num_classes > 0 else nn.Identity()
    return nn.Sequential(nn.Dropout(p=dropout), head)


def init_mobile_weights(model: nn.Module, linear: str = "normal", group_fan_out: bool = False) -> None:
    """Initialise like the reference code of the mobile CNNs: convolutions He-normal over fan-out,
    BatchNorm to (1, 0), and linear layers by ``linear``:

    * ``"normal"``: N(0, 0.01), zero bias (torchvision MobileNetV2/V3, MobileNeXt);
    * ``"uniform"``: U(-1/sqrt(out), 1/sqrt(out)), zero bias (torchvision EfficientNet);
    * ``"goog"``: the TensorFlow TPU reference as timm writes it: U(-1/sqrt(out), 1/sqrt(out)) and
      ``group_fan_out=True`` (a grouped conv's fan-out is divided by its groups);
    * ``"default"``: leave linear layers at PyTorch's default.

    Example:
        >>> layer = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Flatten(), nn.Linear(8, 2))
        >>> init_mobile_weights(layer, linear="normal")
    """
    check_choice("linear", linear, LINEAR_INITS)
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
            if group_fan_out:
                fan_out //= module.groups
            nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan_out))
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear) and linear != "default":
            if linear == "normal":
                nn.init.normal_(module.weight, 0.0, 0.01)
            else:
                bound = 1.0 / math.sqrt(module.out_features)
                nn.init.uniform_(module.weight, -bound, bound)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


class PooledClassifierNet(ImageBackbone):
    """Base of the torchvision-layout mobile nets: ``features`` (stem, blocks, head conv), global
    average pooling ``avgpool`` and ``classifier``; subclasses build the three in ``__init__``.

    Example:
        >>> net = PooledClassifierNet()
        >>> net.features, net.avgpool, net.classifier = nn.Conv2d(3, 8, 1), nn.AdaptiveAvgPool2d(1), nn.Linear(8, 2)
        >>> net(torch.randn(1, 3, 4, 4)).shape
        torch.Size([1, 2])
    """

    default_input_size = 224
    features: nn.Module
    avgpool: nn.Module
    classifier: nn.Module

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_chans, H, W) -> (B, num_features, H/32, W/32): the map before pooling."""
        return self.features(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.flatten(self.avgpool(x), 1)  # (B, C, H, W) -> (B, C)
        return self.classifier(pooled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class ConvResidual(nn.Module):
    """Base of MobileNetV2's ``InvertedResidual`` and MobileNeXt's ``SandGlass``: the branch ``conv`` (a
    ``Sequential``) with an identity shortcut where the subclass sets ``use_residual``.

    Example:
        >>> block = ConvResidual()
        >>> block.conv, block.use_residual = nn.Conv2d(4, 4, 1), True
        >>> block(torch.randn(1, 4, 2, 2)).shape
        torch.Size([1, 4, 2, 2])
    """

    conv: nn.Module
    use_residual: bool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)  # (B, C_in, H, W) -> (B, C_out, H/s, W/s)
        if self.use_residual:
            out = out + x
        return out


def check_block_args(in_channels: int, out_channels: int, stride: int) -> None:
    """Raise ``ValueError`` unless the widths are positive ints and the stride is 1 or 2.

    Example:
        >>> check_block_args(16, 24, 2)
    """
    check_int("in_channels", in_channels)
    check_int("out_channels", out_channels)
    if stride not in (1, 2):
        raise ValueError(f"stride must be 1 or 2, got {stride!r}")
