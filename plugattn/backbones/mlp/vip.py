"""Vision Permutator ViP-Small/7.

Paper: Qibin Hou, Zihang Jiang, Li Yuan, Ming-Ming Cheng, Shuicheng Yan, Jiashi Feng, "Vision Permutator:
A Permutable MLP-Like Architecture for Visual Recognition", IEEE TPAMI 2022 (arXiv 2106.12368).
Section 3 and Fig. 2, layout as the official code (github.com/houqb/VisionPermutator, ``models/vip.py``,
``vip_s7``):

* patch embedding: a 7x7 convolution with stride 7 (224 -> a 32 x 32 grid), C = 192;
* Permutator block: ``x + Permute-MLP(LN(x))`` then ``x + MLP(LN(x))`` (MLP ratio 3, GELU);
* Permute-MLP (Sec. 3.2, "Weighted Permute-MLP"): three branches on the (H, W, C) map --
  the channels are split into ``N = H`` segments of ``S = C / N`` channels; the height branch permutes
  the H axis with the segment axis, (H, W, N, S) -> (N, W, H, S), so a Linear over the last H*S = C
  values mixes information along the height, and permutes back; the width branch does the same with W;
  the channel branch is a plain Linear over C. The branches are fused by split attention
  (Eq. (3)-(4)): ``a = softmax_3(MLP(mean_HW(X_H + X_W + X_C)))`` per channel,
  ``out = Linear(a_H X_H + a_W X_W + a_C X_C)`` (:func:`~plugattn.backbones.layers.reweight_branches`);
* ViP-Small/7 (Table 1 and ``vip_s7``): stage 1: 4 blocks at 32 x 32, C = 192, 32 segments; a 2x2
  stride-2 convolution to 16 x 16, C = 384; then 3 + 8 + 3 blocks at 16 x 16, C = 384, 16 segments;
  LayerNorm, mean over positions, linear head. Channel and height/width Linears have no bias
  (``qkv_bias=False``).

Fixed input size: the height/width Linears require ``H * S == C`` (the segment count equals the grid
size), so a model is defined for the ``img_size`` it was built for only -- 224 by default (the paper's
size). Other input sizes raise a ``ValueError`` naming both sizes (the check is a ``torch.fx.wrap``-ed
call: it is kept in traced graphs and skipped for FX proxies while tracing). ``img_size`` (a multiple of
14 whose grids divide the channel widths) builds the same architecture for another size: the segment
counts follow the grids, the parameter count does not change.

Init as the official code: truncated-normal (std 0.02) Linear weights, zero biases, unit/zero LayerNorm,
PyTorch-default convolutions. Module and parameter names are the official ones (``patch_embed.proj``,
``network.i.j.attn.mlp_h``, ``reweight.fc1``, ``norm``, ``head``), so a checkpoint of the official
``vip_s7`` loads with ``load_state_dict``; the blocks here take and return (B, C, H, W) maps
(the official code keeps (B, H, W, C) between blocks: same numbers, other layout), so every
:class:`~plugattn.backbones.layers.PermutatorBlock` is an injection site.

Reference parameter count (1000 classes): the paper (and the DynaMixer README's comparison table) gives ViP-Small/7 as "25M" (rounded).
The exact count of the official ``vip_s7`` configuration, computed from its layer shapes (arithmetic
written out in the test), is 25,114,984 -- the registered reference; this implementation measures the
same 25,114,984 (0.46% above the rounded 25M).
"""
from __future__ import annotations

from functools import partial
from typing import Any, List, Sequence, Tuple

import torch
import torch.fx
import torch.nn as nn
from einops import rearrange

from ..._validate import check_int
from ..layers import (
    ImageBackbone, LayerNorm2d, Mlp, PatchEmbed, PermutatorBlock, check_rate, init_trunc_normal_,
    linear_drop_path_rates, reweight_branches,
)
from ..registry import register_backbone

# einops cannot see FX proxies and the size check must run at run time: both are recorded as single calls
torch.fx.wrap("rearrange")

__all__ = ["WeightedPermuteMLP", "VisionPermutator", "vip_s7"]


class WeightedPermuteMLP(nn.Module):
    """Weighted Permute-MLP (Sec. 3.2): height, width and channel branches fused by split attention,
    then a Linear. (B, H, W, C) -> (B, H, W, C) with ``H == W == segment_dim`` (so that H * S == C).

    Example:
        >>> WeightedPermuteMLP(dim=16, segment_dim=4)(torch.randn(2, 4, 4, 16)).shape
        torch.Size([2, 4, 4, 16])
    """

    def __init__(self, dim: int, segment_dim: int, qkv_bias: bool = False) -> None:
        super().__init__()
        check_int("dim", dim)
        check_int("segment_dim", segment_dim)
        if dim % segment_dim:
            raise ValueError(f"segment_dim must divide dim={dim}, got segment_dim={segment_dim}")
        self.segment_dim = segment_dim
        self.segment_size = dim // segment_dim  # S: channels per segment
        self.mlp_c = nn.Linear(dim, dim, bias=qkv_bias)
        self.mlp_h = nn.Linear(dim, dim, bias=qkv_bias)
        self.mlp_w = nn.Linear(dim, dim, bias=qkv_bias)
        self.reweight = Mlp(dim, dim // 4, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g, s = self.segment_dim, self.segment_size
        # height branch: swap H with the segment axis, so the Linear over (H, S) mixes along the height
        x_h = rearrange(x, "b h w (g s) -> b g w (h s)", g=g)
        x_h = rearrange(self.mlp_h(x_h), "b g w (h s) -> b h w (g s)", s=s)
        # width branch: the same with W
        x_w = rearrange(x, "b h w (g s) -> b h g (w s)", g=g)
        x_w = rearrange(self.mlp_w(x_w), "b h g (w s) -> b h w (g s)", s=s)
        x_c = self.mlp_c(x)
        return self.proj(reweight_branches(x_h, x_w, x_c, self.reweight))


class VisionPermutator(ImageBackbone):
    """Hierarchical MLP network of ViP (also the skeleton of CycleMLP and DynaMixer): patch embedding,
    stages of blocks separated by strided convolutions where ``transitions`` says so, per-pixel
    LayerNorm, mean over positions, linear head.

    ``network`` is the official list ``[stage 1, downsample, stage 2, ...]`` (a downsample appears after
    stage i when ``transitions[i]`` or the width changes). Subclasses override :meth:`make_block`,
    :meth:`make_patch_embed` and :meth:`make_downsample`. ``fixed_input = False`` (CycleMLP) removes
    the input-size check; ``trunc_normal_types`` lists the module types given the truncated-normal init.

    Example:
        >>> model = VisionPermutator(layers=(1, 1), embed_dims=(16, 32), transitions=(True, False),
        ...                          mlp_ratios=(3, 3), img_size=56, num_classes=5)
        >>> model(torch.randn(2, 3, 56, 56)).shape
        torch.Size([2, 5])
        >>> model.forward_features(torch.randn(2, 3, 56, 56)).shape  # 8 x 8 grid, then 4 x 4
        torch.Size([2, 32, 4, 4])
    """

    default_input_size = 224
    fixed_input = True  # token mixing sized to the grids
    trunc_normal_types: Tuple[type, ...] = (nn.Linear,)  # initialised with a truncated normal (std 0.02)

    def __init__(
        self,
        layers: Sequence[int] = (4, 3, 8, 3),
        embed_dims: Sequence[int] = (192, 384, 384, 384),
        transitions: Sequence[bool] = (True, False, False, False),
        mlp_ratios: Sequence[float] = (3, 3, 3, 3),
        img_size: int = 224,
        patch_size: int = 7,
        in_chans: int = 3,
        num_classes: int = 1000,
        drop_path_rate: float = 0.0,
        qkv_bias: bool = False,
    ) -> None:
        super().__init__()
        self.in_chans = in_chans
        check_int("num_classes", num_classes, minimum=0)
        for name, value in (("in_chans", in_chans), ("img_size", img_size), ("patch_size", patch_size)):
            check_int(name, value)
        check_rate("drop_path_rate", drop_path_rate)
        num_stages = len(layers)
        if num_stages == 0 or not len(embed_dims) == len(transitions) == len(mlp_ratios) == num_stages:
            raise ValueError(
                f"layers, embed_dims, transitions and mlp_ratios need one entry per stage, got "
                f"{list(layers)!r}, {list(embed_dims)!r}, {list(transitions)!r}, {list(mlp_ratios)!r}"
            )
        for name, values in (("layers", layers), ("embed_dims", embed_dims)):
            for value in values:
                check_int(name, value)
        self.num_classes = num_classes
        self.num_features = embed_dims[-1]
        self.default_input_size = img_size
        self.img_size = img_size
        # the only size taken (ImageBackbone's input check enforces it); None: any size (CycleMLP)
        self.input_hw = (img_size, img_size) if self.fixed_input else None
        self.qkv_bias = qkv_bias
        self.grids = self.stage_grids(img_size, patch_size, transitions)

        self.patch_embed = self.make_patch_embed(in_chans, embed_dims[0], patch_size)
        # stochastic depth grows linearly over all blocks (official ``basic_blocks``)
        rates = iter(linear_drop_path_rates(drop_path_rate, sum(layers)))
        network: List[nn.Module] = []
        for stage, (depth, dim) in enumerate(zip(layers, embed_dims)):
            blocks = [self.make_block(stage, dim, float(mlp_ratios[stage]), next(rates)) for _ in range(depth)]
            network.append(nn.Sequential(*blocks))
            if stage < num_stages - 1 and (transitions[stage] or dim != embed_dims[stage + 1]):
                network.append(self.make_downsample(dim, embed_dims[stage + 1], 2 if transitions[stage] else 1))
        self.network = nn.ModuleList(network)
        self.norm = LayerNorm2d(embed_dims[-1], eps=1e-5)
        self.head = nn.Linear(embed_dims[-1], num_classes) if num_classes > 0 else nn.Identity()
        # official init: truncated normal (std 0.02) weights, zero biases; LayerNorms keep PyTorch's 1 / 0
        init_trunc_normal_(self, self.trunc_normal_types)

    def stage_grids(self, img_size: int, patch_size: int, transitions: Sequence[bool]) -> List[int]:
        """Grid side of every stage at ``img_size`` (each transition halves it)."""
        if self.fixed_input and img_size % patch_size:
            raise ValueError(f"img_size must be a multiple of patch_size={patch_size}, got {img_size}")
        grids, grid = [], img_size // patch_size
        for transition in transitions:
            grids.append(grid)
            if transition:
                if self.fixed_input and grid % 2:
                    raise ValueError(
                        f"img_size={img_size} gives an odd {grid} x {grid} grid before a 2x2 downsampling; "
                        f"use a multiple of {2 * patch_size}"
                    )
                grid //= 2
        return grids

    def make_patch_embed(self, in_chans: int, dim: int, patch_size: int) -> nn.Module:
        """ViP: a non-overlapping ``patch_size`` convolution (official ``PatchEmbed``)."""
        return PatchEmbed(in_chans, dim, patch_size)

    def make_downsample(self, in_dim: int, out_dim: int, patch_size: int) -> nn.Module:
        """ViP: a non-overlapping ``patch_size`` convolution (official ``Downsample``)."""
        return PatchEmbed(in_dim, out_dim, patch_size)

    def make_block(self, stage: int, dim: int, mlp_ratio: float, drop_path: float) -> nn.Module:
        """ViP: Weighted Permute-MLP with as many segments as the stage's grid side."""
        grid = self.grids[stage]
        if dim % grid:
            raise ValueError(
                f"Permute-MLP needs the grid side to divide the channels: stage {stage + 1} has a {grid} x {grid} "
                f"grid and {dim} channels (img_size={self.img_size}); choose another img_size"
            )
        mixer = WeightedPermuteMLP(dim, segment_dim=grid, qkv_bias=self.qkv_bias)
        return PermutatorBlock(dim, mixer, mlp_ratio, drop_path)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_chans, H, W) -> the normalised final map (B, C, H / 14, W / 14) (ViP-S/7)."""
        x = self.patch_embed(x)  # (B, in_chans, H, W) -> (B, C, H/7, W/7)
        for layer in self.network:
            x = layer(x)
        return self.norm(x)  # LayerNorm over the channels of every position

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.forward_features(x).mean(dim=(2, 3))  # mean over positions -> (B, C)
        return self.head(x)


_PAPER = ("Hou, Jiang, Yuan, Cheng, Yan, Feng: Vision Permutator: A Permutable MLP-Like Architecture "
          "for Visual Recognition")
_register = partial(register_backbone, family="mlp", paper=_PAPER, venue="TPAMI", year=2022)


@_register("vip_s7", aliases=("vip_small_7",), params=25_114_984)
def vip_s7(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> VisionPermutator:
    """ViP-Small/7: layers (4, 3, 8, 3), widths (192, 384, 384, 384), segments (32, 16, 16, 16), MLP ratio 3,
    a 2x downsampling after stage 1; 224 x 224 inputs (paper: 25M parameters; measured 25,114,984);
    stochastic depth 0.1, as the official README trains ``vip_s7`` (``--drop-path 0.1``).

    Example:
        >>> vip_s7().network[0][0].attn.segment_dim
        32
    """
    kwargs.setdefault("layers", (4, 3, 8, 3))
    kwargs.setdefault("embed_dims", (192, 384, 384, 384))
    kwargs.setdefault("transitions", (True, False, False, False))
    kwargs.setdefault("mlp_ratios", (3, 3, 3, 3))
    kwargs.setdefault("drop_path_rate", 0.1)  # the official README's ViP-S/7 training command: --drop-path 0.1
    return VisionPermutator(num_classes=num_classes, in_chans=in_chans, patch_size=7, **kwargs)
