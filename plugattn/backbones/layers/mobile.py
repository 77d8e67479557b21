"""Pieces shared by the mobile CNNs (MobileNetV1/V2/V3, MnasNet, EfficientNet(V2), MobileNeXt, GhostNet):
the pooled classifier head and network frame, and the conv residual frame of MobileNetV2 / MobileNeXt
(their argument checks are in :mod:`.checks`, their weight init in :mod:`.init`).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .image_backbone import ImageBackbone


def make_classifier(in_features: int, num_classes: int, dropout: float = 0.0) -> nn.Sequential:
    """``Sequential(Dropout, Linear)`` as torchvision's mobile models name it (``classifier.1`` is the
    Linear); ``num_classes=0`` puts an identity in place of the Linear, so the model returns pooled features.

    Example:
        >>> make_classifier(1280, 10, 0.2)(torch.zeros(2, 1280)).shape
        torch.Size([2, 10])
    """
    head = nn.Linear(in_features, num_classes) if num_classes > 0 else nn.Identity()
    return nn.Sequential(nn.Dropout(p=dropout), head)


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

