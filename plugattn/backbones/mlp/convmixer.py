"""ConvMixer-768/32 and ConvMixer-1536/20.

Paper: Asher Trockman, J. Zico Kolter, "Patches Are All You Need?", TMLR 2023. Section 2 and Fig. 2,
Eq. (1)-(3):

* z_0 = BN(sigma{Conv_{c_in -> h}(X, stride=p, kernel_size=p)})      -- patch embedding;
* z'_l = BN(sigma{ConvDepthwise(z_{l-1})}) + z_{l-1}                  -- spatial mixing, residual;
* z_{l+1} = BN(sigma{ConvPointwise(z'_l)})                            -- channel mixing, no residual;
* global average pooling, linear head. The activation comes BEFORE BatchNorm everywhere.
* ConvMixer-h/d: width h, depth d. 1536/20: kernel 9, patch 7, GELU; 768/32: kernel 7, patch 7, ReLU
  (Table 1 and the released models).

Runs at any input size (fully convolutional; "same" padding keeps the patch grid).

Module layout and names are timm's (``stem.0/2``, ``blocks.i.0.fn.0/2``, ``blocks.i.1/3``, ``head``) --
each block a :class:`ConvMixerBlock` whose entry 0 is the :class:`Residual` depthwise part -- so timm's
``convmixer_768_32`` / ``convmixer_1536_20`` state_dicts load unchanged. Init: PyTorch defaults, as the
paper's reference code and timm.

Reference parameter counts (1000 classes), timm's published counts, re-measured here by building timm's
models with random weights: convmixer_768_32 21,110,248 (paper Table 1: 21.1M), convmixer_1536_20
51,625,960 (paper: 51.6M).

Injection sites: every module maps (B, C, H, W) maps, e.g. after each block
(``inject_attention(model, "eca", after="ConvMixerBlock")``) or on the spatial-mixing residual branch
(``branch="Residual"`` / ``after="Residual"``).
"""
from __future__ import annotations

from functools import partial
from typing import Any

import torch
import torch.nn as nn

from ..._validate import check_int
from ..layers import ImageBackbone, get_act
from ..registry import register_backbone

__all__ = ["Residual", "ConvMixerBlock", "ConvMixer", "convmixer_768_32", "convmixer_1536_20"]


class Residual(nn.Module):
    """``fn(x) + x`` (the skip connection around ConvMixer's depthwise mixing, Eq. (2)).

    Example:
        >>> Residual(nn.Identity())(torch.ones(1, 2, 3, 3)).sum().item()
        36.0
    """

    def __init__(self, fn: nn.Module) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x) + x


class ConvMixerBlock(nn.Sequential):
    """ConvMixer layer (Eq. (2)-(3)): residual depthwise ``kernel_size`` conv -> act -> BN, then pointwise
    conv -> act -> BN. (B, C, H, W) -> (B, C, H, W). Indexed like timm (0 residual, 1 conv, 2 act, 3 BN).

    Example:
        >>> ConvMixerBlock(16, kernel_size=5, act="gelu")(torch.randn(2, 16, 8, 8)).shape
        torch.Size([2, 16, 8, 8])
    """

    def __init__(self, dim: int, kernel_size: int, act: str = "gelu") -> None:
        spatial = nn.Sequential(
            nn.Conv2d(dim, dim, kernel_size, groups=dim, padding="same"),
            get_act(act),
            nn.BatchNorm2d(dim),
        )
        super().__init__(Residual(spatial), nn.Conv2d(dim, dim, kernel_size=1), get_act(act), nn.BatchNorm2d(dim))


class ConvMixer(ImageBackbone):
    """ConvMixer-``dim``/``depth``: patch embedding, ``depth`` :class:`ConvMixerBlock`, average pool, head.

    Example:
        >>> model = ConvMixer(dim=16, depth=2, kernel_size=3, patch_size=4, num_classes=5)
        >>> model(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 5])
        >>> model.forward_features(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 16, 8, 8])
    """

    default_input_size = 224

    def __init__(
        self,
        dim: int = 768,
        depth: int = 32,
        kernel_size: int = 7,
        patch_size: int = 7,
        in_chans: int = 3,
        num_classes: int = 1000,
        act: str = "gelu",
    ) -> None:
        super().__init__()
        self.in_chans = in_chans
        for name, value in (("dim", dim), ("depth", depth), ("kernel_size", kernel_size),
                            ("patch_size", patch_size), ("in_chans", in_chans)):
            check_int(name, value)
        check_int("num_classes", num_classes, minimum=0)
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (symmetric 'same' padding), got {kernel_size}")
        self.num_classes = num_classes
        self.num_features = dim
        self.stem = nn.Sequential(
            nn.Conv2d(in_chans, dim, kernel_size=patch_size, stride=patch_size),
            get_act(act),
            nn.BatchNorm2d(dim),
        )
        self.blocks = nn.Sequential(*[ConvMixerBlock(dim, kernel_size, act) for _ in range(depth)])
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(dim, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_chans, H, W) -> (B, dim, H/p, W/p)."""
        return self.blocks(self.stem(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.forward_features(x)).flatten(1)  # (B, dim, 1, 1) -> (B, dim)
        return self.head(x)


_PAPER = "Trockman, Kolter: Patches Are All You Need?"
_register = partial(register_backbone, family="mlp", paper=_PAPER, venue="TMLR", year=2023)


@_register("convmixer_768_32", params=21_110_248)
def convmixer_768_32(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ConvMixer:
    """ConvMixer-768/32: kernel 7, patch 7, ReLU (timm: 21,110,248 parameters).

    Example:
        >>> len(convmixer_768_32().blocks)
        32
    """
    kwargs.setdefault("act", "relu")
    return ConvMixer(dim=768, depth=32, kernel_size=7, patch_size=7, num_classes=num_classes, in_chans=in_chans,
                     **kwargs)


@_register("convmixer_1536_20", params=51_625_960)
def convmixer_1536_20(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ConvMixer:
    """ConvMixer-1536/20: kernel 9, patch 7, GELU (timm: 51,625,960 parameters).

    Example:
        >>> convmixer_1536_20().num_features
        1536
    """
    kwargs.setdefault("act", "gelu")
    return ConvMixer(dim=1536, depth=20, kernel_size=9, patch_size=7, num_classes=num_classes, in_chans=in_chans,
                     **kwargs)
