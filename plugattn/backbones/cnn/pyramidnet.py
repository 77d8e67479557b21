"""PyramidNet (additive), CIFAR and ImageNet variants.

Paper: Dongyoon Han, Jiwhan Kim, Junmo Kim, "Deep Pyramidal Residual Networks", CVPR 2017.

* Widths grow linearly by a step at every residual unit instead of doubling at down-sampling
  (additive PyramidNet, Eq. 2): ``D_k = floor(D_{k-1} + alpha / N)`` with ``N`` the total number
  of units; the reference code keeps the running width as a float and rounds it per unit
  (``int(round(.))``), which is what is done here.
* Residual unit (Fig. 6 (d)/(e)): ``BN-conv3x3-BN-ReLU-conv3x3-BN`` (basic) or
  ``BN-conv1x1-BN-ReLU-conv3x3-BN-ReLU-conv1x1(x4)-BN`` (bottleneck): no ReLU after the addition
  and none before the first conv.
* Shortcut: zero-padded identity (Section 2.3, option "zero-padded shortcut"); where the unit
  down-samples, a 2x2 average pool (stride 2) is applied first.
* CIFAR: 3x3 conv (16) + BN stem, three stages of ``(depth - 2) / 6`` basic units (stride 1, 2, 2),
  start width 16. ImageNet: ResNet stem (7x7/2 conv 64, BN, ReLU, 3x3/2 max pool), four stages of
  bottleneck units ([3, 24, 36, 3] for depth 200), start width 64.
* Head: BN, ReLU, global average pool, linear.

Reference parameter counts (paper tables, also in the authors' README jhkim89/PyramidNet):
PyramidNet-110 (additive, alpha = 48), CIFAR, basic units: 1.7M (final width 16 + 48 = 64);
PyramidNet-200 (alpha = 300), ImageNet, bottleneck units: 62.1M (final width (64 + 300) x 4 = 1456).
The tables round to 0.1M and slightly under-state the authors' own code: building the model part
of the authors' PyTorch code (dyhan0920/PyramidNet-PyTorch, ``PyramidNet(110, 48, 10)``) gives
exactly 1,772,706 parameters, which is also our count and is the reference registered for
``pyramidnet110_a48`` (the paper's "1.7M" is 4% lower: a truncated figure). For PyramidNet-200
(alpha = 300) we count 62,368,168, within 0.5% of the paper's 62.1M, which is registered.
No torchvision / timm implementation exists to load weights from.
"""
from __future__ import annotations

from typing import Any, List, Optional, Type, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..._validate import check_choice, check_int
from ..layers import ImageBackbone, init_kaiming_fan_out_
from ..registry import register_backbone

__all__ = ["PyramidBasicBlock", "PyramidBottleneck", "PyramidNet", "pyramidnet110_a48", "pyramidnet200_a300"]

IMAGENET_LAYERS = {
    18: ("basic", [2, 2, 2, 2]),
    34: ("basic", [3, 4, 6, 3]),
    50: ("bottleneck", [3, 4, 6, 3]),
    101: ("bottleneck", [3, 4, 23, 3]),
    152: ("bottleneck", [3, 8, 36, 3]),
    200: ("bottleneck", [3, 24, 36, 3]),
}


class _ZeroPadShortcut(nn.Module):
    """Identity shortcut (average pooled where the unit down-samples) zero-padded with the extra
    channels the residual branch adds: (B, C_in, H, W) -> (B, C_out, H/s, W/s)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        if out_channels < in_channels:
            raise ValueError(f"a pyramidal unit cannot narrow: in {in_channels} > out {out_channels} channels")
        self.extra_channels = out_channels - in_channels
        self.pool = nn.AvgPool2d(2, stride=2, ceil_mode=True) if stride != 1 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool is not None:
            x = self.pool(x)
        # F.pad pads from the last dim backwards: (W: 0, 0), (H: 0, 0), (C: 0, extra)
        return F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))


class PyramidBasicBlock(nn.Module):
    """Pyramidal basic unit: ``BN-conv3x3-BN-ReLU-conv3x3-BN`` + zero-padded shortcut.

    Example:
        >>> PyramidBasicBlock(16, 19)(torch.randn(1, 16, 8, 8)).shape
        torch.Size([1, 19, 8, 8])
    """

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes)
        self.shortcut = _ZeroPadShortcut(inplanes, planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(self.bn1(x))  # (B, Cin, H, W) -> (B, planes, H/s, W/s)
        out = self.bn3(self.conv2(self.relu(self.bn2(out))))
        return out + self.shortcut(x)


class PyramidBottleneck(nn.Module):
    """Pyramidal bottleneck unit: ``BN-conv1x1-BN-ReLU-conv3x3-BN-ReLU-conv1x1(x4)-BN`` +
    zero-padded shortcut.

    Example:
        >>> PyramidBottleneck(64, 20)(torch.randn(1, 64, 8, 8)).shape
        torch.Size([1, 80, 8, 8])
    """

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn4 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = _ZeroPadShortcut(inplanes, planes * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(self.bn1(x))  # (B, Cin, H, W) -> (B, planes, H, W)
        out = self.conv2(self.relu(self.bn2(out)))  # -> (B, planes, H/s, W/s)
        out = self.bn4(self.conv3(self.relu(self.bn3(out))))  # -> (B, 4 planes, H/s, W/s)
        return out + self.shortcut(x)


BLOCKS = {"basic": PyramidBasicBlock, "bottleneck": PyramidBottleneck}


class PyramidNet(ImageBackbone):
    """Additive PyramidNet.

    ``dataset="cifar"``: ``depth`` = 6n + 2 (basic) or 9n + 2 (bottleneck), three stages, 32x32
    input. ``dataset="imagenet"``: ``depth`` in 18, 34, 50, 101, 152, 200 (stage lengths of the
    matching ResNet, 200 = [3, 24, 36, 3]), four stages, 224x224 input. ``alpha`` is the total
    widening over all units.

    Init as the authors' code: conv weights N(0, 2 / (k * k * C_out)), BN scale 1 / shift 0,
    PyTorch's default for the linear head.

    Example:
        >>> model = PyramidNet("cifar", depth=20, alpha=12, num_classes=10)
        >>> model(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 10])
        >>> model.num_features
        28
    """

    def __init__(
        self,
        dataset: str = "cifar",
        depth: int = 110,
        alpha: float = 48,
        num_classes: int = 10,
        in_chans: int = 3,
        block: Optional[str] = None,
    ) -> None:
        super().__init__()
        self.in_chans = in_chans
        check_choice("dataset", dataset, ("cifar", "imagenet"))
        check_int("depth", depth, minimum=2)
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha >= 0:
            raise ValueError(f"alpha must be a number >= 0 (total widening), got {alpha!r}")
        check_int("num_classes", num_classes, minimum=0)
        check_int("in_chans", in_chans)
        if block is not None:
            check_choice("block", block, tuple(BLOCKS))
        self.num_classes = num_classes

        if dataset == "cifar":
            block = block or "basic"
            per_unit_depth = 2 if block == "basic" else 3
            if (depth - 2) % (3 * per_unit_depth) != 0:
                raise ValueError(
                    f"depth for a CIFAR PyramidNet with {block} units must be {3 * per_unit_depth}n + 2, got {depth!r}"
                )
            stage_lengths = [(depth - 2) // (3 * per_unit_depth)] * 3
            start_width = 16
            self.default_input_size = 32
            self.stem = nn.Sequential(
                nn.Conv2d(in_chans, start_width, 3, padding=1, bias=False), nn.BatchNorm2d(start_width)
            )
        else:
            if depth not in IMAGENET_LAYERS:
                raise ValueError(
                    f"depth for an ImageNet PyramidNet must be one of {sorted(IMAGENET_LAYERS)}, got {depth!r}"
                )
            default_block, stage_lengths = IMAGENET_LAYERS[depth]
            block = block or default_block
            start_width = 64
            self.default_input_size = 224
            self.stem = nn.Sequential(
                nn.Conv2d(in_chans, start_width, 7, stride=2, padding=3, bias=False),
                nn.BatchNorm2d(start_width),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
            )
        block_cls: Type[Union[PyramidBasicBlock, PyramidBottleneck]] = BLOCKS[block]

        # the width grows by alpha / N at each of the N units (paper Eq. 2)
        step = alpha / sum(stage_lengths)
        width = float(start_width)
        in_channels = start_width
        stages: List[nn.Module] = []
        for stage_index, length in enumerate(stage_lengths):
            units = []
            for unit_index in range(length):
                width += step
                stride = 2 if (stage_index > 0 and unit_index == 0) else 1
                planes = int(round(width))
                units.append(block_cls(in_channels, planes, stride))
                in_channels = planes * block_cls.expansion
            stages.append(nn.Sequential(*units))
        self.layers = nn.Sequential(*stages)
        self.num_features = in_channels
        self.bn_final = nn.BatchNorm2d(in_channels)
        self.relu_final = nn.ReLU(inplace=True)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, num_classes) if num_classes > 0 else nn.Identity()

        # N(0, 2 / (k * k * C_out)) is Kaiming-normal with fan_out and the ReLU gain
        init_kaiming_fan_out_(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_chans, H, W) -> (B, num_features, H/4 or H/32, ...), after the final BN-ReLU."""
        x = self.layers(self.stem(x))
        return self.relu_final(self.bn_final(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.avgpool(self.forward_features(x)), 1)  # -> (B, num_features)
        return self.fc(x)


_PAPER = "Han, Kim, Kim: Deep Pyramidal Residual Networks"


@register_backbone(
    "pyramidnet110_a48",
    family="cnn",
    aliases=("pyramidnet110",),
    paper=_PAPER,
    venue="CVPR",
    year=2017,
    params=1_772_706,
    reference_num_classes=10,
)
def pyramidnet110_a48(num_classes: int = 10, in_chans: int = 3, **kwargs: Any) -> PyramidNet:
    """Additive PyramidNet-110, alpha = 48, basic units, CIFAR (32x32); 1,772,706 parameters for
    10 classes, as the authors' PyTorch code (paper: 1.7M).

    Example:
        >>> pyramidnet110_a48().num_features
        64
    """
    return PyramidNet("cifar", 110, 48, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_backbone(
    "pyramidnet200_a300",
    family="cnn",
    aliases=("pyramidnet200",),
    paper=_PAPER,
    venue="CVPR",
    year=2017,
    params=62_100_000,
)
def pyramidnet200_a300(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> PyramidNet:
    """Additive PyramidNet-200, alpha = 300, bottleneck units, ImageNet; 62,368,168 parameters
    (paper: 62.1M).

    Example:
        >>> pyramidnet200_a300().num_features
        1456
    """
    return PyramidNet("imagenet", 200, 300, num_classes=num_classes, in_chans=in_chans, **kwargs)
