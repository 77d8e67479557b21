"""Convolution pieces shared by the CNNs: channel rounding (:func:`make_divisible`), conv-norm-act, and
the bias-free 3x3 / 1x1 convolutions of the ResNet family (torchvision's ``conv3x3`` / ``conv1x1``)."""
from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn as nn

from .activations import ActSpec, get_act


def make_divisible(value: float, divisor: int = 8, min_value: Optional[int] = None, round_limit: float = 0.9) -> int:
    """Round ``value`` to the nearest multiple of ``divisor``, never below ``round_limit`` of it
    (the rule of the TensorFlow MobileNet / EfficientNet reference code).

    Example:
        >>> make_divisible(37.5), make_divisible(16 * 1.1)
        (40, 16)
    """
    min_value = min_value or divisor
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < round_limit * value:
        rounded += divisor
    return rounded


class ConvNormAct(nn.Sequential):
    """Conv2d -> BatchNorm2d -> activation, as a ``Sequential`` indexed 0, 1, 2 like torchvision's
    ``Conv2dNormActivation`` so its weights load without renaming.

    Example:
        >>> ConvNormAct(3, 16, 3, stride=2)(torch.randn(1, 3, 8, 8)).shape
        torch.Size([1, 16, 4, 4])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: Optional[int] = None,
        groups: int = 1,
        dilation: int = 1,
        act: ActSpec = "relu",
        norm: Optional[Callable[[int], nn.Module]] = nn.BatchNorm2d,
        bias: Optional[bool] = None,
        inplace: bool = True,
    ) -> None:
        if padding is None:
            padding = (kernel_size - 1) // 2 * dilation
        if bias is None:
            bias = norm is None
        layers = [nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias=bias)]
        if norm is not None:
            layers.append(norm(out_channels))
        if act is not None:
            layers.append(get_act(act, inplace=inplace))
        super().__init__(*layers)
        self.out_channels = out_channels


def conv3x3(in_planes: int, out_planes: int, stride: int = 1, groups: int = 1, dilation: int = 1) -> nn.Conv2d:
    """3x3 convolution, padding that keeps the size at stride 1, no bias (a BN follows).

    Example:
        >>> conv3x3(8, 16, stride=2)(torch.zeros(1, 8, 8, 8)).shape
        torch.Size([1, 16, 4, 4])
    """
    return nn.Conv2d(
        in_planes, out_planes, 3, stride=stride, padding=dilation, groups=groups, bias=False, dilation=dilation
    )


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution without bias.

    Example:
        >>> conv1x1(8, 4)(torch.zeros(1, 8, 3, 3)).shape
        torch.Size([1, 4, 3, 3])
    """
    return nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False)
