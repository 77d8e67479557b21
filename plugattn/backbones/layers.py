"""Pieces shared by several backbones: channel rounding, conv-norm-act, stochastic depth,
activation lookup. Built-in squeeze-excitation uses :class:`plugattn.attention.se.SELayer`."""
from __future__ import annotations

from typing import Callable, Optional, Type, Union

import torch
import torch.nn as nn

from .._validate import check_choice

ACTIVATIONS = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "silu": nn.SiLU,
    "swish": nn.SiLU,
    "gelu": nn.GELU,
    "hardswish": nn.Hardswish,
    "hardsigmoid": nn.Hardsigmoid,
    "sigmoid": nn.Sigmoid,
    "identity": nn.Identity,
}

ActSpec = Union[str, Type[nn.Module], None]


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


def get_act(act: ActSpec, inplace: bool = False) -> nn.Module:
    """An activation module from a name (``"relu"``, ``"silu"``, ...), a class, or ``None`` (identity).

    Example:
        >>> get_act("silu")
        SiLU()
    """
    if act is None:
        return nn.Identity()
    if isinstance(act, str):
        cls = ACTIVATIONS[check_choice("act", act.lower(), list(ACTIVATIONS))]
    else:
        cls = act
    if inplace and cls in (nn.ReLU, nn.ReLU6, nn.SiLU, nn.Hardswish, nn.Hardsigmoid):
        return cls(inplace=True)
    return cls()


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


def drop_path(x: torch.Tensor, drop_prob: float = 0.0, training: bool = False) -> torch.Tensor:
    """Stochastic depth (Huang et al. ECCV'16): drop whole residual branches per sample, rescale the rest.

    Example:
        >>> drop_path(torch.ones(2, 3), 0.5, training=False).sum().item()
        6.0
    """
    if drop_prob == 0.0 or not training:
        return x
    keep_prob = 1.0 - drop_prob
    # one Bernoulli draw per sample, broadcast over every other dimension: (B, 1, 1, ...)
    mask_shape = (x.shape[0],) + (1,) * (x.dim() - 1)
    mask = x.new_empty(mask_shape).bernoulli_(keep_prob)
    return x * mask / keep_prob


class DropPath(nn.Module):
    """Module form of :func:`drop_path`.

    Example:
        >>> DropPath(0.1).eval()(torch.ones(2, 3)).shape
        torch.Size([2, 3])
    """

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= drop_prob < 1.0:
            raise ValueError(f"drop_prob must be in [0, 1), got {drop_prob!r}")
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.drop_prob, self.training)

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"
