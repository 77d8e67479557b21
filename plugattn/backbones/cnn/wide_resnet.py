"""Wide ResNet for CIFAR: WRN-28-10.

Paper: Sergey Zagoruyko, Nikos Komodakis, "Wide Residual Networks", BMVC 2016. Table 1 (structure
of WRN-d-k): conv1 3x3 with 16 channels, then three groups conv2/conv3/conv4 of
``N = (d - 4) / 6`` pre-activation "basic" blocks B(3,3) with 16k / 32k / 64k channels (the
first block of conv3 and conv4 has stride 2), then BN-ReLU, 8x8 average pool and a linear
classifier. Each block is ``BN-ReLU-conv3x3-[dropout]-BN-ReLU-conv3x3`` plus a shortcut that is the
identity, or a 1x1 conv (applied to the pre-activated input, as in the authors' code) where the
width or stride changes. Convolutions have no bias. Dropout between the convolutions is
optional (the paper's dropout experiments use 0.3; default 0 here, the plain WRN-28-10).

Reference parameter count: 36.5M for WRN-28-10 (the paper's CIFAR results table). The paper rounds, so
the architecture was checked against an exact count: 36,479,194 parameters for 10 classes and
36,536,884 for 100 classes, the values the pytorchcv / imgclsmob (osmr) ``wrn_cifar`` tests assert
for ``wrn28_10_cifar10`` / ``wrn28_10_cifar100``; ours are identical.
"""
from __future__ import annotations

from typing import Any, List

import torch
import torch.nn as nn

from ..._validate import check_int
from ..layers import ImageBackbone, init_kaiming_fan_out_
from ..registry import register_backbone

__all__ = ["WideBasicBlock", "WideResNet", "wide_resnet28_10"]


class WideBasicBlock(nn.Module):
    """Pre-activation wide block B(3,3): ``BN-ReLU-conv3x3-dropout-BN-ReLU-conv3x3`` + shortcut.

    Example:
        >>> WideBasicBlock(16, 160, stride=1)(torch.randn(1, 16, 8, 8)).shape
        torch.Size([1, 160, 8, 8])
    """

    def __init__(self, in_planes: int, out_planes: int, stride: int = 1, drop_rate: float = 0.0) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.relu2 = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(drop_rate)
        self.conv2 = nn.Conv2d(out_planes, out_planes, 3, stride=1, padding=1, bias=False)
        self.has_projection = in_planes != out_planes or stride != 1
        self.shortcut = (
            nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False) if self.has_projection else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        activated = self.relu1(self.bn1(x))
        # the projection sees the pre-activated input; the identity sees the raw input
        shortcut = self.shortcut(activated) if self.shortcut is not None else x
        out = self.conv1(activated)  # (B, Cin, H, W) -> (B, Cout, H/s, W/s)
        out = self.conv2(self.dropout(self.relu2(self.bn2(out))))
        return out + shortcut


class WideResNet(ImageBackbone):
    """WRN-``depth``-``widen_factor`` for 32x32 input.

    Init as the authors' code: Kaiming-normal convs (fan_out, ReLU), BN scale 1 / shift 0, zero
    linear bias.

    Example:
        >>> model = WideResNet(depth=10, widen_factor=1, num_classes=10)
        >>> model(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """

    default_input_size = 32

    def __init__(
        self,
        depth: int = 28,
        widen_factor: int = 10,
        num_classes: int = 10,
        in_chans: int = 3,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self.in_chans = in_chans
        check_int("depth", depth, minimum=10)
        if (depth - 4) % 6 != 0:
            raise ValueError(f"depth must be 6n + 4 (10, 16, 22, 28, 40, ...), got {depth!r}")
        check_int("widen_factor", widen_factor)
        check_int("num_classes", num_classes, minimum=0)
        check_int("in_chans", in_chans)
        if not 0.0 <= drop_rate < 1.0:
            raise ValueError(f"drop_rate must be in [0, 1), got {drop_rate!r}")
        blocks_per_group = (depth - 4) // 6
        widths = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.num_classes = num_classes
        self.num_features = widths[3]

        self.conv1 = nn.Conv2d(in_chans, widths[0], 3, padding=1, bias=False)
        self.block1 = self._make_group(widths[0], widths[1], blocks_per_group, 1, drop_rate)
        self.block2 = self._make_group(widths[1], widths[2], blocks_per_group, 2, drop_rate)
        self.block3 = self._make_group(widths[2], widths[3], blocks_per_group, 2, drop_rate)
        self.bn = nn.BatchNorm2d(widths[3])
        self.relu = nn.ReLU(inplace=True)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(widths[3], num_classes) if num_classes > 0 else nn.Identity()

        init_kaiming_fan_out_(self, zero_linear_bias=True)

    @staticmethod
    def _make_group(in_planes: int, out_planes: int, blocks: int, stride: int, drop_rate: float) -> nn.Sequential:
        layers: List[nn.Module] = [WideBasicBlock(in_planes, out_planes, stride, drop_rate)]
        layers += [WideBasicBlock(out_planes, out_planes, 1, drop_rate) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_chans, 32, 32) -> (B, 64k, 8, 8), after the final BN-ReLU."""
        x = self.conv1(x)  # -> (B, 16, 32, 32)
        x = self.block1(x)  # -> (B, 16k, 32, 32)
        x = self.block2(x)  # -> (B, 32k, 16, 16)
        x = self.block3(x)  # -> (B, 64k, 8, 8)
        return self.relu(self.bn(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.avgpool(self.forward_features(x)), 1)  # -> (B, 64k)
        return self.fc(x)


@register_backbone(
    "wide_resnet28_10",
    family="cnn",
    aliases=("wrn28_10",),
    paper="Zagoruyko, Komodakis: Wide Residual Networks",
    venue="BMVC",
    year=2016,
    params=36_479_194,
    reference_num_classes=10,
)
def wide_resnet28_10(num_classes: int = 10, in_chans: int = 3, **kwargs: Any) -> WideResNet:
    """WRN-28-10 for CIFAR (32x32): 4 blocks per group, widths 160/320/640; 36,479,194 parameters
    for 10 classes (paper: 36.5M).

    Example:
        >>> wide_resnet28_10()(torch.randn(1, 3, 32, 32)).shape
        torch.Size([1, 10])
    """
    return WideResNet(28, 10, num_classes=num_classes, in_chans=in_chans, **kwargs)
