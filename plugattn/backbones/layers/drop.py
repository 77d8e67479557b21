"""Stochastic depth (Huang, Sun, Liu, Sedra, Weinberger, "Deep Networks with Stochastic Depth", ECCV 2016):
per-sample dropping of residual branches and the linear rate schedule most backbones train with."""
from __future__ import annotations

from typing import List

import torch
import torch.nn as nn


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


def linear_drop_path_rates(drop_path_rate: float, num_blocks: int) -> List[float]:
    """Stochastic-depth rates rising linearly from 0 at the first block to ``drop_path_rate`` at the
    last (the schedule of Huang et al. used by DeiT, Swin, ConvNeXt, ...). Pure Python, so models
    also build on the ``meta`` device.

    Example:
        >>> linear_drop_path_rates(0.2, 3)
        [0.0, 0.1, 0.2]
    """
    return [drop_path_rate * index / max(num_blocks - 1, 1) for index in range(num_blocks)]
