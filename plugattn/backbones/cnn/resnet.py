"""ResNet-18/34/50/101/152 and Wide ResNet-50-2 for ImageNet.

Paper: Kaiming He, Xiangyu Zhang, Shaoqing Ren, Jian Sun, "Deep Residual Learning for Image
Recognition", CVPR 2016 (Table 1: the 18/34-layer nets stack ``BasicBlock`` (two 3x3 convs), the
50/101/152-layer nets stack ``Bottleneck`` (1x1 reduce, 3x3, 1x1 expand x4); stages of
[2,2,2,2], [3,4,6,3], [3,4,6,3], [3,4,23,3], [3,8,36,3] blocks with 64/128/256/512 base widths;
projection shortcuts (option B: 1x1 conv + BN) where the shape changes).

Wide ResNet-50-2: Sergey Zagoruyko, Nikos Komodakis, "Wide Residual Networks", BMVC 2016; the
ImageNet variant of torchvision doubles the inner 3x3 width of every bottleneck (``width_per_group=128``).

Like torchvision (and unlike the original Caffe model) the stride of a down-sampling bottleneck sits
on the 3x3 conv ("ResNet v1.5"). Module names are torchvision's, so
``load_external_weights(model, torchvision.models.resnet50().state_dict(), "torchvision")`` is an
identity load; timm's ``resnet50`` uses the same names and loads too.

Reference parameter counts (1000 classes), torchvision's published numbers, re-measured here by
building the torchvision models with random weights:

=================  ============
resnet18            11,689,512
resnet34            21,797,672
resnet50            25,557,032
resnet101           44,549,160
resnet152           60,192,808
wide_resnet50_2     68,883,240
=================  ============
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Type

import torch
import torch.nn as nn

from ..._validate import check_int
from ..layers import ImageBackbone, NormLayer, conv1x1, conv3x3, init_kaiming_fan_out_
from ..registry import register_backbone

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "ResNet",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "wide_resnet50_2",
]

class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers and an identity (or projection) shortcut: He et al. 2016, Fig. 2 left.

    ``y = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``

    Example:
        >>> BasicBlock(64, 64)(torch.randn(1, 64, 8, 8)).shape
        torch.Size([1, 64, 8, 8])
    """

    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: Optional[nn.Module] = None,
        groups: int = 1,
        base_width: int = 64,
        dilation: int = 1,
        norm_layer: Optional[NormLayer] = None,
    ) -> None:
        super().__init__()
        if groups != 1 or base_width != 64:
            raise ValueError(
                f"BasicBlock supports only groups=1 and base_width=64, got groups={groups!r}, base_width={base_width!r}"
            )
        if dilation > 1:
            raise ValueError(f"BasicBlock supports only dilation=1, got dilation={dilation!r}")
        norm_layer = norm_layer or nn.BatchNorm2d
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = norm_layer(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))  # (B, Cin, H, W) -> (B, planes, H/s, W/s)
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)

    def zero_init_last(self) -> None:
        """Zero the last BN scale so the block starts as the identity (Goyal et al. 2017)."""
        nn.init.zeros_(self.bn2.weight)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (stride here, "v1.5"), 1x1 expand by 4: He et al. 2016, Fig. 5 right.

    The inner width is ``int(planes * base_width / 64) * groups`` (ResNeXt / Wide ResNet rule of
    torchvision), which is ``planes`` for the plain ResNet.

    Example:
        >>> Bottleneck(256, 64)(torch.randn(1, 256, 8, 8)).shape
        torch.Size([1, 256, 8, 8])
    """

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: Optional[nn.Module] = None,
        groups: int = 1,
        base_width: int = 64,
        dilation: int = 1,
        norm_layer: Optional[NormLayer] = None,
    ) -> None:
        super().__init__()
        norm_layer = norm_layer or nn.BatchNorm2d
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1 = conv1x1(inplanes, width)
        self.bn1 = norm_layer(width)
        self.conv2 = conv3x3(width, width, stride, groups, dilation)
        self.bn2 = norm_layer(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = norm_layer(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))  # (B, Cin, H, W) -> (B, width, H, W)
        out = self.relu(self.bn2(self.conv2(out)))  # -> (B, width, H/s, W/s)
        out = self.bn3(self.conv3(out))  # -> (B, 4 * planes, H/s, W/s)
        return self.relu(out + identity)

    def zero_init_last(self) -> None:
        """Zero the last BN scale so the block starts as the identity (Goyal et al. 2017)."""
        nn.init.zeros_(self.bn3.weight)


class ResNet(ImageBackbone):
    """ResNet trunk: 7x7/2 conv stem, 3x3/2 max-pool, four stages, global average pool, linear head.

    ``block`` is any residual block class with the torchvision signature
    ``(inplanes, planes, stride, downsample, groups, base_width, dilation, norm_layer, **block_kwargs)``
    and an ``expansion`` attribute (``BasicBlock``, ``Bottleneck``, Res2Net's ``Bottle2neck``).

    Init as torchvision: Kaiming-normal (fan_out, ReLU) convs, BN scale 1 / shift 0, PyTorch's
    default for the linear head; ``zero_init_residual`` zeroes each block's last BN scale.

    Example:
        >>> model = ResNet(BasicBlock, [2, 2, 2, 2], num_classes=10)
        >>> model(torch.randn(1, 3, 64, 64)).shape
        torch.Size([1, 10])
        >>> model.forward_features(torch.randn(1, 3, 64, 64)).shape
        torch.Size([1, 512, 2, 2])
    """

    default_input_size = 224

    def __init__(
        self,
        block: Type[nn.Module],
        layers: Sequence[int],
        num_classes: int = 1000,
        in_chans: int = 3,
        zero_init_residual: bool = False,
        groups: int = 1,
        width_per_group: int = 64,
        replace_stride_with_dilation: Optional[Sequence[bool]] = None,
        norm_layer: Optional[NormLayer] = None,
        block_kwargs: Optional[Dict[str, Any]] = None,
    ) -> None:
        super().__init__()
        self.in_chans = in_chans
        check_int("num_classes", num_classes, minimum=0)
        check_int("in_chans", in_chans, minimum=1)
        check_int("groups", groups, minimum=1)
        check_int("width_per_group", width_per_group, minimum=1)
        if len(layers) != 4 or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in layers):
            raise ValueError(f"layers must be 4 integers >= 1 (blocks per stage), got {list(layers)!r}")
        if replace_stride_with_dilation is None:
            replace_stride_with_dilation = [False, False, False]
        if len(replace_stride_with_dilation) != 3:
            raise ValueError(
                "replace_stride_with_dilation must be None or 3 booleans (stages 2-4), "
                f"got {list(replace_stride_with_dilation)!r}"
            )
        self._norm_layer = norm_layer or nn.BatchNorm2d
        self._block_kwargs = dict(block_kwargs or {})
        self.num_classes = num_classes
        self.inplanes = 64
        self.dilation = 1
        self.groups = groups
        self.base_width = width_per_group

        self.conv1 = nn.Conv2d(in_chans, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = self._norm_layer(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2, dilate=replace_stride_with_dilation[0])
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2, dilate=replace_stride_with_dilation[1])
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2, dilate=replace_stride_with_dilation[2])
        self.num_features = 512 * block.expansion
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

        init_kaiming_fan_out_(self)
        if zero_init_residual:
            for m in self.modules():
                if hasattr(m, "zero_init_last"):
                    m.zero_init_last()

    def _make_layer(
        self, block: Type[nn.Module], planes: int, blocks: int, stride: int = 1, dilate: bool = False
    ) -> nn.Sequential:
        norm_layer = self._norm_layer
        downsample = None
        previous_dilation = self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        if stride != 1 or self.inplanes != planes * block.expansion:
            # projection shortcut (option B of the paper) where the shape changes
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride),
                norm_layer(planes * block.expansion),
            )
        layers: List[nn.Module] = [
            block(
                self.inplanes, planes, stride, downsample, self.groups, self.base_width, previous_dilation,
                norm_layer, **self._block_kwargs,
            )
        ]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(
                block(
                    self.inplanes, planes, groups=self.groups, base_width=self.base_width, dilation=self.dilation,
                    norm_layer=norm_layer, **self._block_kwargs,
                )
            )
        return nn.Sequential(*layers)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_chans, H, W) -> (B, 512 * expansion, H/32, W/32), the map before pooling."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # -> (B, 64, H/4, W/4)
        x = self.layer1(x)
        x = self.layer2(x)  # -> (B, 128 * e, H/8, W/8)
        x = self.layer3(x)  # -> (B, 256 * e, H/16, W/16)
        return self.layer4(x)  # -> (B, 512 * e, H/32, W/32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.forward_features(x)
        x = torch.flatten(self.avgpool(x), 1)  # (B, C, h, w) -> (B, C)
        return self.fc(x)


def _resnet(block: Type[nn.Module], layers: List[int], num_classes: int, in_chans: int, **kwargs: Any) -> ResNet:
    return ResNet(block, layers, num_classes=num_classes, in_chans=in_chans, **kwargs)


_PAPER = "He, Zhang, Ren, Sun: Deep Residual Learning for Image Recognition"


@register_backbone("resnet18", family="cnn", paper=_PAPER, venue="CVPR", year=2016, params=11_689_512)
def resnet18(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """ResNet-18 (BasicBlock, [2, 2, 2, 2]); 11,689,512 parameters as torchvision.

    Example:
        >>> resnet18(num_classes=10)(torch.randn(1, 3, 64, 64)).shape
        torch.Size([1, 10])
    """
    return _resnet(BasicBlock, [2, 2, 2, 2], num_classes, in_chans, **kwargs)


@register_backbone("resnet34", family="cnn", paper=_PAPER, venue="CVPR", year=2016, params=21_797_672)
def resnet34(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """ResNet-34 (BasicBlock, [3, 4, 6, 3]); 21,797,672 parameters as torchvision.

    Example:
        >>> resnet34().fc.out_features
        1000
    """
    return _resnet(BasicBlock, [3, 4, 6, 3], num_classes, in_chans, **kwargs)


@register_backbone("resnet50", family="cnn", paper=_PAPER, venue="CVPR", year=2016, params=25_557_032)
def resnet50(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """ResNet-50 (Bottleneck, [3, 4, 6, 3]); 25,557,032 parameters as torchvision and timm.

    Example:
        >>> resnet50(num_classes=0)(torch.randn(1, 3, 64, 64)).shape
        torch.Size([1, 2048])
    """
    return _resnet(Bottleneck, [3, 4, 6, 3], num_classes, in_chans, **kwargs)


@register_backbone("resnet101", family="cnn", paper=_PAPER, venue="CVPR", year=2016, params=44_549_160)
def resnet101(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """ResNet-101 (Bottleneck, [3, 4, 23, 3]); 44,549,160 parameters as torchvision.

    Example:
        >>> resnet101().num_features
        2048
    """
    return _resnet(Bottleneck, [3, 4, 23, 3], num_classes, in_chans, **kwargs)


@register_backbone("resnet152", family="cnn", paper=_PAPER, venue="CVPR", year=2016, params=60_192_808)
def resnet152(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """ResNet-152 (Bottleneck, [3, 8, 36, 3]); 60,192,808 parameters as torchvision.

    Example:
        >>> len(resnet152().layer3)
        36
    """
    return _resnet(Bottleneck, [3, 8, 36, 3], num_classes, in_chans, **kwargs)


@register_backbone(
    "wide_resnet50_2",
    family="cnn",
    aliases=("wrn50_2",),
    paper="Zagoruyko, Komodakis: Wide Residual Networks",
    venue="BMVC",
    year=2016,
    params=68_883_240,
)
def wide_resnet50_2(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """Wide ResNet-50-2: ResNet-50 with every bottleneck's 3x3 width doubled; 68,883,240 parameters
    as torchvision's ``wide_resnet50_2``.

    Example:
        >>> wide_resnet50_2().layer1[0].conv2.out_channels
        128
    """
    return _resnet(Bottleneck, [3, 4, 6, 3], num_classes, in_chans, width_per_group=64 * 2, **kwargs)
