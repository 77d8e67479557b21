"""Telling a channels-last (B, H, W, C) feature map from a (B, C, H, W) one.

Swin-style blocks return (B, H, W, C) maps; reading their C from dim 1 would build attention for H
channels. A 4-D site tensor is taken as channels-last when

* the last parameterised layer that produced it (recorded in the example run) is an
  ``nn.Linear`` or ``nn.LayerNorm`` over the last dim, whose size is the last dim and not dim 1
  (``LayerNorm2d``-style modules normalise dim 1 and are not caught); or
* the example image is square and the tensor's dims 1 and 2 agree while dim 3 differs: a square
  image keeps square maps, so (B, 56, 56, 96) is H, W, C.

The attention then runs on the (B, C, H, W) view (``permute(0, 3, 1, 2)``) and its result is
permuted back, so the host still receives (B, H, W, C).
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import torch
import torch.nn as nn


def last_dim_features(layer: Optional[nn.Module]) -> Optional[int]:
    """The feature size a Linear / LayerNorm acts on along the last dim, else None."""
    if isinstance(layer, nn.Linear):
        return layer.out_features
    if isinstance(layer, nn.LayerNorm) and len(layer.normalized_shape) == 1:
        return int(layer.normalized_shape[0])
    return None


def is_channels_last(value: torch.Tensor, last_leaf: Optional[nn.Module], example_args: Sequence[Any]) -> bool:
    """Whether the 4-D ``value`` is laid out (B, H, W, C) (see the module docstring).

    Example:
        >>> image = (torch.zeros(1, 3, 64, 64),)
        >>> is_channels_last(torch.zeros(1, 16, 16, 96), None, image), is_channels_last(torch.zeros(1, 96, 16, 16), None, image)
        (True, False)
        >>> is_channels_last(torch.zeros(1, 12, 20, 96), nn.LayerNorm(96), (torch.zeros(1, 3, 48, 80),))
        True
    """
    if value.dim() != 4:
        return False
    _, dim1, dim2, dim3 = value.shape
    features = last_dim_features(last_leaf)
    if features is not None and features == dim3 and features != dim1:
        return True
    image = next((a for a in example_args if isinstance(a, torch.Tensor) and a.dim() == 4), None)
    return image is not None and image.shape[-1] == image.shape[-2] and dim1 == dim2 != dim3
