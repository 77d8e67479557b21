"""The two-layer MLPs of the transformer and MLP backbones: :class:`Mlp` on the last dimension (tokens or
channels-last maps) and :class:`ConvMlp`, its 1x1-convolution form on (B, C, H, W) maps.

Both are the position-wise feed-forward network of Vaswani et al. ("Attention Is All You Need",
NeurIPS 2017, Sec. 3.3) as ViT uses it (Dosovitskiy et al., ICLR 2021, Eq. (3)): the activation sits
only BETWEEN the two layers. Submodules are named ``fc1``, ``act``, ``fc2`` (and ``norm1`` / ``norm2``),
timm's and the official codes' names, so their checkpoints load by name.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn

from ..._validate import check_int
from .activations import ActSpec, get_act
from .norms import NormLayer


def _hidden_and_out(in_features: int, hidden_features: int, out_features: Optional[int]) -> int:
    """Check the widths; returns ``out_features`` (``in_features`` when ``None``)."""
    check_int("in_features", in_features)
    check_int("hidden_features", hidden_features)
    if out_features is None:
        return in_features
    check_int("out_features", out_features)
    return out_features


class Mlp(nn.Module):
    """Transformer MLP ``fc2(act(fc1(x)))`` on the last dimension: (..., in) -> (..., out).

    ``out_features`` defaults to ``in_features``; ``act`` is a name of :data:`~.activations.ACTIVATIONS`,
    an ``nn.Module`` class or ``None`` (identity).

    Example:
        >>> Mlp(8, 32)(torch.randn(2, 5, 8)).shape
        torch.Size([2, 5, 8])
        >>> Mlp(8, 2, 24)(torch.randn(2, 8)).shape  # ViP's branch re-weighting: C -> C/4 -> 3C
        torch.Size([2, 24])
    """

    def __init__(self, in_features: int, hidden_features: int, out_features: Optional[int] = None,
                 act: ActSpec = "gelu", bias: bool = True) -> None:
        super().__init__()
        out_features = _hidden_and_out(in_features, hidden_features, out_features)
        self.fc1 = nn.Linear(in_features, hidden_features, bias=bias)
        self.act = get_act(act)
        self.fc2 = nn.Linear(hidden_features, out_features, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))  # (..., C) -> (..., hidden) -> (..., C_out)


class ConvMlp(nn.Module):
    """Channel MLP on a (B, C, H, W) map: 1x1 conv ``fc1`` -> ``norm1`` -> ``act`` -> 1x1 conv ``fc2`` ->
    ``norm2``. The norms are parameter-free identities unless ``norm_layer`` (a callable ``width -> module``
    on maps) is given, e.g. ``nn.BatchNorm2d`` for the MLP of EfficientFormer's Meta4D block (Li et al.,
    NeurIPS 2022, Eq. (3)); without it this is the plain MLP of PoolFormer (Yu et al., CVPR 2022) and
    Shift-ViT (Wang et al., AAAI 2022).

    Example:
        >>> ConvMlp(8, 32)(torch.randn(2, 8, 4, 4)).shape
        torch.Size([2, 8, 4, 4])
        >>> ConvMlp(8, 32, norm_layer=nn.BatchNorm2d).norm2.num_features
        8
    """

    def __init__(self, in_features: int, hidden_features: int, out_features: Optional[int] = None,
                 act: ActSpec = "gelu", norm_layer: Optional[NormLayer] = None) -> None:
        super().__init__()
        out_features = _hidden_and_out(in_features, hidden_features, out_features)
        if norm_layer is not None and not callable(norm_layer):
            raise TypeError(f"norm_layer must be a callable width -> nn.Module or None, got {norm_layer!r}")
        self.fc1 = nn.Conv2d(in_features, hidden_features, 1)
        self.norm1 = norm_layer(hidden_features) if norm_layer else nn.Identity()
        self.act = get_act(act)
        self.fc2 = nn.Conv2d(hidden_features, out_features, 1)
        self.norm2 = norm_layer(out_features) if norm_layer else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.norm1(self.fc1(x)))  # (B, C, H, W) -> (B, hidden, H, W)
        return self.norm2(self.fc2(x))  # -> (B, C_out, H, W)
