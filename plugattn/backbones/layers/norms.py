"""Norm helpers: :class:`LayerNorm2d` (LayerNorm over the channels of each position of a (B, C, H, W) map,
as ConvNeXt -- Liu et al., CVPR 2022 -- and the hierarchical transformers use it), :class:`Permute`, and
``NormLayer``, the type of the norm factories the layers and models take."""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

# a norm for a given width, e.g. nn.BatchNorm2d, LayerNorm2d, partial(nn.GroupNorm, 1)
NormLayer = Callable[[int], nn.Module]


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a (B, C, H, W) map (each pixel normalised on its own).

    Example:
        >>> LayerNorm2d(8)(torch.randn(2, 8, 3, 3)).shape
        torch.Size([2, 8, 3, 3])
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)  # (B, C, H, W) -> (B, H, W, C)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)  # -> (B, C, H, W)


class Permute(nn.Module):
    """``x.permute(*dims)`` as a module (keeps torchvision's ``block.i`` numbering).

    Example:
        >>> Permute([0, 2, 3, 1])(torch.zeros(1, 4, 5, 6)).shape
        torch.Size([1, 5, 6, 4])
    """

    def __init__(self, dims: Sequence[int]) -> None:
        super().__init__()
        self.dims = list(dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.permute(x, self.dims)
