"""Activation lookup shared by the backbones: names (``"relu"``, ``"gelu"``, ...) to modules, and
QuickGELU (the sigmoid approximation of GELU used by CLIP and the official CvT code)."""
from __future__ import annotations

from typing import Type, Union

import torch
import torch.nn as nn

from ..._validate import check_choice


class QuickGELU(nn.Module):
    """``x * sigmoid(1.702 x)``: the sigmoid approximation of GELU (Hendrycks & Gimpel 2016, Sec. 2)
    that CLIP and the official CvT code use in place of ``nn.GELU``.

    Example:
        >>> round(QuickGELU()(torch.tensor([1.0])).item(), 4)
        0.8458
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


ACTIVATIONS = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "silu": nn.SiLU,
    "swish": nn.SiLU,
    "gelu": nn.GELU,
    "quick_gelu": QuickGELU,
    "hardswish": nn.Hardswish,
    "hardsigmoid": nn.Hardsigmoid,
    "sigmoid": nn.Sigmoid,
    "identity": nn.Identity,
}

ActSpec = Union[str, Type[nn.Module], None]


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
