"""Shift-ViT-T.

Paper: Guangting Wang, Yucheng Zhao, Chuanxin Tang, Chong Luo, Wenjun Zeng, "When Shift Operation Meets
Vision Transformer: An Extremely Simple Alternative to Attention Mechanism", AAAI 2022. Sec. 3 / Fig. 2:

* the attention layer of a Swin-like hierarchical transformer is replaced by a parameter-free shift:
  of the C channels, four groups of C / n_div channels are moved by one pixel left, right, up and
  down (vacated pixels are zero), the rest stay; n_div = 12 (so 1/3 of the channels move);
* block: ``x = shift(x)`` then ``x = x + MLP(Norm(x))``; the MLP is 1x1 conv -> GELU -> 1x1 conv
  (no activation after the second layer); Norm is LayerNorm over channels, written as GroupNorm with one
  group on the (B, C, H, W) layout (official code);
* stem: 4x4 stride-4 patch embedding + Norm; patch merging between stages: Norm then a 2x2 stride-2
  conv doubling the width (no bias); final Norm, global average pooling, linear classifier.
* Shift-T ("r2" in the official code, the model of the paper's Table 4 / 5): C = 96, depths
  (6, 8, 18, 6), MLP ratio 2, stochastic depth 0.2.

Everything works on (B, C, H, W) maps; the shift is written with slicing and ``F.pad``, so it is
traceable and needs no custom kernel. Any input size divisible by 32 works (224 is the default).

Module names are the official code's (``patch_embed.proj/norm``, ``layers.i.blocks.j.norm2``,
``mlp.fc1/fc2``, ``layers.i.downsample.norm/reduction``, ``norm``, ``head``), so the released
checkpoints load unchanged. timm and torchvision do not implement Shift-ViT.

Reference parameter count: 28.5M for Shift-T in the paper's Table 4 (rounded). Checked architecture:
stage widths / depths / MLP ratio / n_div from the official ``shiftvit_r2_tiny`` config above; this
implementation has 28,566,664 parameters at 1000 classes (0.23% above 28.5M; the test asserts 0.5%),
which is the closed form: per block 2C (norm) + (2C^2 + 2C) + (2C^2 + C) (MLP, ratio 2) over
C = 96, 192, 384, 768 with depths (6, 8, 18, 6); per patch merging 2C + 8C^2 (C = 96, 192, 384); stem
48 * 96 + 96 + 2 * 96; final norm 2 * 768; head 768 * 1000 + 1000.

Injection sites: every module produces a (B, C, H, W) map -- :class:`ShiftViTBlock` (38 blocks),
:class:`PatchMerging` (3) and :class:`~plugattn.backbones.layers.PatchEmbed`. No site produces tokens.
"""
from __future__ import annotations

from functools import partial
from typing import Any, List, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..._validate import check_int
from ..layers import (
    ConvMlp, DropPath, ImageBackbone, PatchEmbed, check_probability, init_trunc_normal_, linear_drop_path_rates,
)
from ..registry import register_backbone

__all__ = ["shift_channels", "ShiftViTBlock", "PatchMerging", "ShiftViT", "shiftvit_tiny"]


def shift_channels(x: torch.Tensor, group: int) -> torch.Tensor:
    """Shift four channel groups of width ``group`` by one pixel: left, right, up, down (zeros fill the
    vacated row / column); channels from ``4 * group`` on are unchanged. (B, C, H, W) -> same shape.

    Example:
        >>> x = torch.arange(1.0, 5.0).reshape(1, 1, 1, 4).repeat(1, 4, 1, 1)
        >>> shift_channels(x, 1)[0, :2, 0]  # group 0 moved left, group 1 moved right
        tensor([[2., 3., 4., 0.],
                [0., 1., 2., 3.]])
    """
    left = F.pad(x[:, 0 * group:1 * group, :, 1:], (0, 1))  # out[..., w] = x[..., w + 1]
    right = F.pad(x[:, 1 * group:2 * group, :, :-1], (1, 0))  # out[..., w] = x[..., w - 1]
    up = F.pad(x[:, 2 * group:3 * group, 1:, :], (0, 0, 0, 1))  # out[..., h, :] = x[..., h + 1, :]
    down = F.pad(x[:, 3 * group:4 * group, :-1, :], (0, 0, 1, 0))  # out[..., h, :] = x[..., h - 1, :]
    return torch.cat([left, right, up, down, x[:, 4 * group:]], dim=1)


class ShiftViTBlock(nn.Module):
    """Shift-ViT block (Fig. 2): ``x = shift(x)``; ``x = x + DropPath(MLP(Norm(x)))``.

    Example:
        >>> ShiftViTBlock(24)(torch.randn(2, 24, 8, 8)).shape
        torch.Size([2, 24, 8, 8])
    """

    def __init__(self, dim: int, n_div: int = 12, mlp_ratio: float = 2.0, drop_path: float = 0.0) -> None:
        super().__init__()
        check_int("dim", dim)
        check_int("n_div", n_div, minimum=4)
        if dim < n_div:
            raise ValueError(f"n_div must be <= dim={dim} so every shifted group has a channel, got {n_div}")
        self.group = dim // n_div
        self.norm2 = nn.GroupNorm(1, dim)
        self.mlp = ConvMlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = shift_channels(x, self.group)
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchMerging(nn.Module):
    """Norm then a 2x2 stride-2 conv: (B, C, H, W) -> (B, 2C, H/2, W/2).

    Example:
        >>> PatchMerging(8)(torch.randn(1, 8, 4, 4)).shape
        torch.Size([1, 16, 2, 2])
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(1, dim)
        self.reduction = nn.Conv2d(dim, 2 * dim, 2, stride=2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.reduction(self.norm(x))


class ShiftViTStage(nn.Module):
    """``depth`` Shift-ViT blocks, then (except in the last stage) patch merging.

    Example:
        >>> ShiftViTStage(12, 2, [0.0, 0.0], downsample=True)(torch.randn(1, 12, 4, 4)).shape
        torch.Size([1, 24, 2, 2])
    """

    def __init__(self, dim: int, depth: int, drop_path: Sequence[float], downsample: bool, n_div: int = 12,
                 mlp_ratio: float = 2.0) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*[ShiftViTBlock(dim, n_div, mlp_ratio, drop_path[i]) for i in range(depth)])
        self.downsample = PatchMerging(dim) if downsample else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(self.blocks(x))


class ShiftViT(ImageBackbone):
    """Shift-ViT (Wang et al., AAAI 2022).

    Example:
        >>> model = ShiftViT(embed_dim=24, depths=(1, 1, 1, 1), num_classes=5)
        >>> model(torch.randn(1, 3, 64, 64)).shape
        torch.Size([1, 5])
        >>> model.forward_features(torch.randn(1, 3, 64, 64)).shape
        torch.Size([1, 192, 2, 2])
    """

    default_input_size = 224

    def __init__(self, embed_dim: int = 96, depths: Sequence[int] = (6, 8, 18, 6), mlp_ratio: float = 2.0,
                 n_div: int = 12, num_classes: int = 1000, in_chans: int = 3, drop_path_rate: float = 0.2,
                 patch_size: int = 4) -> None:
        super().__init__()
        self.in_chans = in_chans
        check_int("num_classes", num_classes, minimum=0)
        check_int("in_chans", in_chans)
        check_int("embed_dim", embed_dim)
        check_probability("drop_path_rate", drop_path_rate)
        for depth in depths:
            check_int("depths", depth)
        self.num_classes = num_classes
        self.num_features = embed_dim * 2 ** (len(depths) - 1)
        # stem: 4x4 stride-4 conv + Norm (GroupNorm with one group), on the (B, C, H/4, W/4) map
        self.patch_embed = PatchEmbed(in_chans, embed_dim, patch_size, norm_layer=partial(nn.GroupNorm, 1))
        rates = linear_drop_path_rates(drop_path_rate, sum(depths))
        layers: List[nn.Module] = []
        start = 0
        for index, depth in enumerate(depths):
            dim = embed_dim * 2 ** index
            layers.append(ShiftViTStage(dim, depth, rates[start:start + depth], index < len(depths) - 1, n_div, mlp_ratio))
            start += depth
        self.layers = nn.Sequential(*layers)
        self.norm = nn.GroupNorm(1, self.num_features)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        init_trunc_normal_(self, (nn.Linear, nn.Conv2d))  # official init: truncated normal (std 0.02), zero bias

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_chans, H, W) -> normalised (B, 768, H/32, W/32)."""
        return self.norm(self.layers(self.patch_embed(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.avgpool(self.forward_features(x)), 1)  # -> (B, 768)
        return self.head(x)


@register_backbone(
    "shiftvit_tiny",
    family="vit",
    paper="Wang, Zhao, Tang, Luo, Zeng: When Shift Operation Meets Vision Transformer: An Extremely Simple "
    "Alternative to Attention Mechanism",
    venue="AAAI",
    year=2022,
    params=28_500_000,
)
def shiftvit_tiny(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ShiftViT:
    """Shift-T: C = 96, depths (6, 8, 18, 6), MLP ratio 2, n_div 12 (paper: 28.5M parameters).

    Example:
        >>> shiftvit_tiny(num_classes=0)(torch.randn(1, 3, 64, 64)).shape
        torch.Size([1, 768])
    """
    return ShiftViT(num_classes=num_classes, in_chans=in_chans, **kwargs)
