"""sMLPNet-T (sparse MLP).

Paper: Chuanxin Tang, Yucheng Zhao, Guangting Wang, Chong Luo, Wenxuan Xie, Wenjun Zeng, "Sparse MLP for
Image Recognition: Is Self-Attention Really Necessary?", AAAI 2022 (arXiv 2109.05422). Section 3, Fig. 2,
layout as the official code (github.com/microsoft/SPACH, ``models/smlp.py``, ``smlpnet_tiny``):

* patch partition: a 4x4 stride-4 convolution (no bias) to C = 80 channels; each later stage starts with
  patch merging, a 2x2 stride-2 convolution (no bias) doubling the channels (80, 160, 320, 640);
* block (Fig. 2b): ``x + token_mixing(x)`` then ``x + channel_mixing(x)``. Token mixing = a depth-wise
  3x3 convolution (BN -> GELU -> DWConv, no bias: :class:`DWConvBlock`) followed by the sparse MLP
  (:class:`SparseMLP`, Sec. 3.2, Eq. (4)-(6)): BN -> GELU, then ``X_W`` = a Linear along the width shared
  by all rows and channels, ``X_H`` = a Linear along the height shared by all columns and channels, and
  ``out = Fuse(concat(X, X_W, X_H))`` with ``Fuse`` a 1x1 convolution 3C -> C (no bias). Channel mixing
  = LayerNorm -> Linear C -> alpha*C -> GELU -> Linear alpha*C -> C, with alpha = 3;
* sMLPNet-T: layers (2, 8, 14, 2), C = 80, alpha = 3, stochastic depth 0 (the official ``smlpnet_tiny``
  hard-codes ``dp_rate=0.0``; ``main.py``'s ``--drop-path`` reaches it only as an unused keyword);
  a final BatchNorm, mean over positions, linear head.

Fixed input size: the axial Linears of a stage are N x N for an N x N grid (56, 28, 14, 7 at 224), so the
model is defined for the ``img_size`` it was built for only -- 224 by default, as the paper. Other input
sizes raise a ``ValueError`` naming both sizes (a ``torch.fx.wrap``-ed check, skipped for FX proxies while
tracing). ``img_size`` (a multiple of 32) builds the model for another size; the axial Linears, and so the
parameter count, follow the grids.

Deviations from the official code, none numerical: module names are structural (``stem``,
``stages.i.downsample``, ``stages.i.blocks.j.token_mixing.1.proj_w``, ...) instead of the official flat
lists; the axial mixing uses ``nn.Linear(N, N)`` on the last axis where the official code permutes and uses
a 1x1 ``nn.Conv2d(N, N)`` (same parameters: N*N weights + N biases); the official ``proj_h`` mixes along
the width (it acts on ``x.permute(0, 3, 1, 2)``) and is named ``proj_w`` here, the official ``proh_w``
is ``proj_h``; the concatenation order (X, X_W, X_H) is the official one. Init: PyTorch defaults, as the
official code (it defines no init of its own).

Every (B, C, H, W) block is an injection site (``SMLPBlock``, ``DWConvBlock``, ``SparseMLP``).

Reference parameter count (1000 classes): the paper's abstract and the official README (microsoft/SPACH)
give sMLPNet-T as "24M" (rounded). The exact count of the official ``smlpnet_tiny`` computed from its layer shapes (arithmetic
written out in the test) is 24,123,584 -- the registered reference; this implementation measures the same
(0.51% above the rounded 24M, which it rounds to).
"""
from __future__ import annotations

from functools import partial
from typing import Any, List, Sequence

import torch
import torch.fx
import torch.nn as nn

from ..._validate import check_int
from ..layers import DropPath, ImageBackbone, Mlp, check_rate, linear_drop_path_rates
from ..registry import register_backbone


__all__ = ["DWConvBlock", "SparseMLP", "SMLPBlock", "SMLPNet", "smlpnet_tiny"]


class DWConvBlock(nn.Module):
    """BN -> GELU -> depth-wise 3x3 convolution (no bias): the local part of sMLPNet's token mixing.
    (B, C, H, W) -> (B, C, H, W).

    Example:
        >>> DWConvBlock(8)(torch.randn(2, 8, 5, 5)).shape
        torch.Size([2, 8, 5, 5])
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(channels)
        self.act = nn.GELU()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.act(self.norm(x)))


class SparseMLP(nn.Module):
    """Sparse MLP (Sec. 3.2): BN -> GELU, then axial Linears along W and along H (weights shared across
    rows / columns and channels) and a 1x1 fuse of ``[X, X_W, X_H]``. (B, C, N, N) -> (B, C, N, N).

    Example:
        >>> SparseMLP(8, grid=5)(torch.randn(2, 8, 5, 5)).shape
        torch.Size([2, 8, 5, 5])
    """

    def __init__(self, channels: int, grid: int) -> None:
        super().__init__()
        check_int("channels", channels)
        check_int("grid", grid)
        self.norm = nn.BatchNorm2d(channels)
        self.act = nn.GELU()
        self.proj_w = nn.Linear(grid, grid)  # mixes along the width (official ``proj_h``)
        self.proj_h = nn.Linear(grid, grid)  # mixes along the height (official ``proh_w``)
        self.fuse = nn.Conv2d(3 * channels, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.norm(x))
        along_w = self.proj_w(x)  # Linear on the last axis: every row of every channel, (B, C, H, W)
        along_h = self.proj_h(x.transpose(2, 3)).transpose(2, 3)  # every column: (B, C, W, H) and back
        return self.fuse(torch.cat([x, along_w, along_h], dim=1))  # (B, 3C, H, W) -> (B, C, H, W)


class SMLPBlock(nn.Module):
    """sMLPNet block: ``x + drop_path(SparseMLP(DWConv(x)))`` then ``x + drop_path(MLP(LN(x)))``, the channel
    MLP acting per position. (B, C, N, N) -> (B, C, N, N).

    Example:
        >>> SMLPBlock(8, grid=5)(torch.randn(2, 8, 5, 5)).shape
        torch.Size([2, 8, 5, 5])
    """

    def __init__(self, channels: int, grid: int, mlp_ratio: float = 3.0, drop_path: float = 0.0) -> None:
        super().__init__()
        self.token_mixing = nn.Sequential(DWConvBlock(channels), SparseMLP(channels, grid))
        self.norm = nn.LayerNorm(channels)
        self.mlp = Mlp(channels, int(channels * mlp_ratio))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.token_mixing(x))
        channels_last = x.permute(0, 2, 3, 1)  # (B, C, H, W) -> (B, H, W, C): the MLP acts per position
        mixed = self.mlp(self.norm(channels_last)).permute(0, 3, 1, 2)  # -> (B, C, H, W)
        return x + self.drop_path(mixed)


class SMLPStage(nn.Module):
    """Patch embedding / merging convolution followed by ``depth`` :class:`SMLPBlock` blocks.

    Example:
        >>> SMLPStage(3, 8, depth=1, grid=4, patch_size=4)(torch.randn(1, 3, 16, 16)).shape
        torch.Size([1, 8, 4, 4])
    """

    def __init__(self, in_channels: int, channels: int, depth: int, grid: int, patch_size: int,
                 mlp_ratio: float = 3.0, drop_paths: Sequence[float] = ()) -> None:
        super().__init__()
        self.downsample = nn.Conv2d(in_channels, channels, patch_size, stride=patch_size, bias=False)
        rates = list(drop_paths) or [0.0] * depth
        self.blocks = nn.Sequential(*[SMLPBlock(channels, grid, mlp_ratio, rates[i]) for i in range(depth)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


class SMLPNet(ImageBackbone):
    """sMLPNet: four stages (patch partition then patch merging), final BatchNorm, mean over positions,
    linear head. Defined for ``img_size`` x ``img_size`` inputs only.

    Example:
        >>> model = SMLPNet(layers=(1, 1, 1, 1), dim=8, img_size=64, num_classes=5)
        >>> model(torch.randn(2, 3, 64, 64)).shape
        torch.Size([2, 5])
        >>> model.forward_features(torch.randn(2, 3, 64, 64)).shape
        torch.Size([2, 64, 2, 2])
    """

    default_input_size = 224

    def __init__(
        self,
        layers: Sequence[int] = (2, 8, 14, 2),
        dim: int = 80,
        mlp_ratio: float = 3.0,
        img_size: int = 224,
        patch_size: int = 4,
        in_chans: int = 3,
        num_classes: int = 1000,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self.in_chans = in_chans
        check_int("num_classes", num_classes, minimum=0)
        for name, value in (("in_chans", in_chans), ("img_size", img_size), ("patch_size", patch_size),
                            ("dim", dim)):
            check_int(name, value)
        if len(layers) == 0:
            raise ValueError("layers must list at least one stage depth, got an empty sequence")
        for value in layers:
            check_int("layers", value)
        check_rate("drop_path_rate", drop_path_rate)
        if not mlp_ratio > 0:
            raise ValueError(f"mlp_ratio must be > 0, got {mlp_ratio!r}")
        reduction = patch_size * 2 ** (len(layers) - 1)
        if img_size % reduction:
            raise ValueError(
                f"img_size must be a multiple of {reduction} (patch_size {patch_size} and "
                f"{len(layers) - 1} patch mergings), got {img_size}"
            )
        self.num_classes = num_classes
        self.default_input_size = img_size
        self.input_hw = (img_size, img_size)  # the only size taken: ImageBackbone's input check enforces it
        widths = [dim * 2 ** i for i in range(len(layers))]
        self.num_features = widths[-1]

        # stochastic depth grows linearly over all blocks (official "linear decay rule")
        all_rates = linear_drop_path_rates(drop_path_rate, sum(layers))
        stages: List[nn.Module] = []
        in_channels, grid = in_chans, img_size // patch_size
        for i, (depth, width) in enumerate(zip(layers, widths)):
            rates, all_rates = all_rates[:depth], all_rates[depth:]
            stages.append(SMLPStage(in_channels, width, depth, grid, patch_size if i == 0 else 2, mlp_ratio, rates))
            in_channels, grid = width, grid // 2
        self.stages = nn.Sequential(*stages)
        self.norm = nn.BatchNorm2d(widths[-1])
        self.head = nn.Linear(widths[-1], num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_chans, img_size, img_size) -> the batch-normalised final map (B, 8C, img_size/32, img_size/32)."""
        return self.norm(self.stages(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.forward_features(x).mean(dim=(2, 3))  # mean over positions -> (B, C)
        return self.head(x)


_PAPER = "Tang, Zhao, Wang, Luo, Xie, Zeng: Sparse MLP for Image Recognition: Is Self-Attention Really Necessary?"
_register = partial(register_backbone, family="mlp", paper=_PAPER, venue="AAAI", year=2022)


@_register("smlpnet_tiny", aliases=("smlpnet_t",), params=24_123_584)
def smlpnet_tiny(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> SMLPNet:
    """sMLPNet-T: C = 80, layers (2, 8, 14, 2), alpha = 3, 224 x 224 inputs (paper: 24M parameters).

    Example:
        >>> smlpnet_tiny().stages[0].blocks[0].token_mixing[1].proj_w.weight.shape  # 56 x 56 grid
        torch.Size([56, 56])
    """
    return SMLPNet(num_classes=num_classes, in_chans=in_chans, **kwargs)
