"""Network In Network for CIFAR-10 (32x32 input).

Paper: Min Lin, Qiang Chen, Shuicheng Yan, "Network In Network", ICLR 2014. Section 3: an
"mlpconv" layer is a spatial convolution followed by a small multilayer perceptron shared over
positions, i.e. further 1x1 convolutions, each with ReLU (Eq. 2); the last mlpconv layer emits one
map per class and global average pooling over each map gives the class score (Section 3.2), so the
network has no fully connected layer.

The paper describes the CIFAR-10 net as three stacked mlpconv layers with spatial max pooling and
dropout between them, without listing widths; the concrete widths below are those of the authors'
released Caffe model ("NIN on CIFAR-10", Caffe Model Zoo), as re-implemented in the widely used
jiecaoyu/pytorch-nin-cifar10 (``original.py``):

=========  ==========================================  ===================
mlpconv 1  conv5x5 192 - 1x1 160 - 1x1 96 (ReLU each)  max-pool 3x3/2, dropout 0.5
mlpconv 2  conv5x5 192 - 1x1 192 - 1x1 192             avg-pool 3x3/2, dropout 0.5
mlpconv 3  conv3x3 192 - 1x1 192 - 1x1 10 (+ ReLU)     global average pool
=========  ==========================================  ===================

All convolutions have biases. Init as that reference: weights N(0, 0.05^2), zero biases.
The ReLU on the class maps before pooling is in the reference model and kept here.

Reference parameter count: 966,986 for 10 classes (~0.97M), counted from the table above:
3*192*25+192 + 192*160+160 + 160*96+96 + 96*192*25+192 + 2*(192*192+192) + 192*192*9+192
+ 192*192+192 + 192*10+10. The paper gives no count; this is the architecture of its released model.

In this module the third mlpconv's last 1x1 conv (the per-class maps) is the classifier ``head``,
so ``num_classes=0`` returns the pooled 192-d features.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn as nn

from ..._validate import check_int
from ..layers import ImageBackbone
from ..registry import register_backbone

__all__ = ["MlpConv", "NIN", "nin_cifar"]


class MlpConv(nn.Sequential):
    """One mlpconv layer: a ``kernel_size`` conv then 1x1 convs, each followed by ReLU (Eq. 2).

    ``channels`` lists the output width of every conv in order.

    Example:
        >>> MlpConv(3, (192, 160, 96), kernel_size=5)(torch.randn(1, 3, 32, 32)).shape
        torch.Size([1, 96, 32, 32])
    """

    def __init__(self, in_channels: int, channels: Sequence[int], kernel_size: int) -> None:
        layers = []
        previous = in_channels
        for index, width in enumerate(channels):
            k = kernel_size if index == 0 else 1
            layers.append(nn.Conv2d(previous, width, k, padding=k // 2))
            layers.append(nn.ReLU(inplace=True))
            previous = width
        super().__init__(*layers)
        self.out_channels = previous


class NIN(ImageBackbone):
    """Network In Network, CIFAR-10 configuration (see the module docstring for the table).

    Example:
        >>> NIN(num_classes=10)(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """

    default_input_size = 32

    def __init__(self, num_classes: int = 10, in_chans: int = 3, drop_rate: float = 0.5) -> None:
        super().__init__()
        self.in_chans = in_chans
        check_int("num_classes", num_classes, minimum=0)
        check_int("in_chans", in_chans)
        if not 0.0 <= drop_rate < 1.0:
            raise ValueError(f"drop_rate must be in [0, 1), got {drop_rate!r}")
        self.num_classes = num_classes
        self.num_features = 192
        self.mlpconv1 = MlpConv(in_chans, (192, 160, 96), kernel_size=5)
        self.pool1 = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.drop1 = nn.Dropout(drop_rate)
        self.mlpconv2 = MlpConv(96, (192, 192, 192), kernel_size=5)
        self.pool2 = nn.AvgPool2d(kernel_size=3, stride=2, padding=1)
        self.drop2 = nn.Dropout(drop_rate)
        self.mlpconv3 = MlpConv(192, (192, 192), kernel_size=3)
        if num_classes > 0:
            # one 1x1 map per class, then ReLU, as the reference model's cccp6 + relu
            self.head = nn.Sequential(nn.Conv2d(192, num_classes, 1), nn.ReLU(inplace=True))
        else:
            self.head = nn.Identity()
        self.global_pool = nn.AdaptiveAvgPool2d(1)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, mean=0.0, std=0.05)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_chans, 32, 32) -> (B, 192, 8, 8), the map before the per-class 1x1 conv."""
        x = self.drop1(self.pool1(self.mlpconv1(x)))  # -> (B, 96, 16, 16)
        x = self.drop2(self.pool2(self.mlpconv2(x)))  # -> (B, 192, 8, 8)
        return self.mlpconv3(x)  # -> (B, 192, 8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.forward_features(x))  # -> (B, num_classes, 8, 8)
        return torch.flatten(self.global_pool(x), 1)  # global average pooling -> (B, num_classes)


@register_backbone(
    "nin_cifar",
    family="cnn",
    aliases=("nin",),
    paper="Lin, Chen, Yan: Network In Network",
    venue="ICLR",
    year=2014,
    params=966_986,
    reference_num_classes=10,
)
def nin_cifar(num_classes: int = 10, in_chans: int = 3, **kwargs: Any) -> NIN:
    """NIN for CIFAR-10 (32x32); 966,986 parameters for 10 classes.

    Example:
        >>> sum(p.numel() for p in nin_cifar().parameters())
        966986
    """
    return NIN(num_classes=num_classes, in_chans=in_chans, **kwargs)
