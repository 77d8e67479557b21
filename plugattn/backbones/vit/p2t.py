"""P2T-Tiny (Pyramid Pooling Transformer).

Paper: Yu-Huan Wu, Yun Liu, Xin Zhan, Ming-Ming Cheng, "P2T: Pyramid Pooling Transformer for Scene
Understanding", IEEE TPAMI 2022. Sec. 3 / Fig. 2-3, Eq. (1)-(6):

* pooling-based MHSA (P-MHSA, Eq. 1-4): the queries are all tokens; keys / values come from a pyramid
  of average-pooled copies of the (B, C, H, W) map, one per pooling ratio r: ``P_i = AvgPool_{r_i}(X)``
  with output size H/r x W/r, each refined by a depthwise 3x3 conv with a residual
  (``P_i = P_i + DWConv(P_i)``, the relative positional encoding), flattened, concatenated, LayerNorm-ed
  and projected to K, V; softmax(Q K^T / sqrt(d)) V (``F.scaled_dot_product_attention``), then a linear
  projection. The depthwise convs are shared by all blocks of a stage (official code);
* IRB feed-forward (Eq. 5): 1x1 conv -> Hardswish -> depthwise 3x3 -> Hardswish -> 1x1 conv (no
  activation after the last layer);
* block: ``x = x + P-MHSA(LN(x))``; ``x = x + IRB(LN(x))``;
* patch embedding: overlapping convs + LN -- 7x7 stride 4 (padding 3) in stage 1, 3x3 stride 2
  (padding 1) in stages 2-4 (``overlapping_embed=False`` gives the first release's 4x4 / 2x2 patchify
  convs); token average and a linear classifier (no final norm, as the official code).
* P2T-Tiny as published (TPAMI 2022, the official README table since August 2022: 11.6M parameters,
  1.8 GFLOPs): widths (48, 96, 240, 384), depths (2, 2, 6, 3), heads (1, 2, 5, 8), MLP ratios
  (8, 8, 4, 4), pooling ratios (12, 16, 20, 24), (6, 8, 10, 12), (3, 4, 5, 6), (1, 2, 3, 4), overlapping
  embeddings: ``p2t_tiny`` of the official ``p2t.py`` (github.com/yuhuan-wu/P2T), layer by layer.

Pooling sizes follow the input: the pooled size is ``round(H / r)`` (at least 1) computed from the
map at run time (adaptive average pooling, in a ``torch.fx.wrap``-ed function), never a size fixed to
224. At 224 it is exactly the official code; at inputs below ~r/2 pixels per stage the official
``round`` would give 0 and we keep 1 cell. Any input size works (the default is 224).

Layout: between stages the model carries (B, C, H, W) maps; blocks work on (B, H*W, C) tokens.

Reference parameter count: ``p2t_tiny`` has 11,590,840 parameters at 1000 classes, exactly the official
``p2t_tiny`` (built from the official code: same count, and its 284 state-dict tensors load into ours with
``load_external_weights(model, state_dict, "official")``, which renames ``patch_embed1`` / ``block1`` /
``d_convs1`` / ``attn.q.0`` to our names); the README rounds it to 11.6M. ``p2t_tiny_v1`` keeps the
September 2021 first code release's P2T-Tiny (widths (64, 128, 320, 512), depths (2, 2, 2, 2), 4x4 / 2x2
patchify embeddings): 11,109,864 parameters (that release's README: 11.1M).

Injection sites (modules producing (B, C, H, W) maps): :class:`~plugattn.backbones.layers.PatchEmbed` (4)
and :class:`P2TStage` (4). :class:`P2TBlock` maps tokens and is refused by the injector with its
"(B, C, H, W) feature map" error.
"""
from __future__ import annotations

import re
from typing import Any, Dict, List, Mapping, Sequence

import torch
import torch.fx
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from ..._validate import check_int
from ..layers import (
    DropPath, ImageBackbone, LayerNorm2d, PatchEmbed, check_heads, check_probability, init_trunc_normal_,
    linear_drop_path_rates,
)
from ..registry import register_backbone
from ..weights import remap_keys

__all__ = ["pyramid_pool", "PyramidPooling", "PoolingAttention", "IRB", "P2TBlock", "P2TStage",
           "PyramidPoolingTransformer", "p2t_tiny", "p2t_tiny_v1"]

torch.fx.wrap("rearrange")

P2T_POOL_RATIOS = ((12, 16, 20, 24), (6, 8, 10, 12), (3, 4, 5, 6), (1, 2, 3, 4))


@torch.fx.wrap
def pyramid_pool(x: torch.Tensor, ratio: int) -> torch.Tensor:
    """Adaptive average pooling of a (B, C, H, W) map to round(H / ratio) x round(W / ratio) (at least 1).

    Example:
        >>> pyramid_pool(torch.randn(1, 4, 56, 56), 12).shape
        torch.Size([1, 4, 5, 5])
    """
    height, width = x.shape[-2], x.shape[-1]
    return F.adaptive_avg_pool2d(x, (max(1, round(height / ratio)), max(1, round(width / ratio))))


class PyramidPooling(nn.Module):
    """Pooled pyramid with depthwise-conv positional refinement (P2T Eq. 1-2): (B, C, H, W) -> (B, M, C),
    M = sum of the pooled areas. Shared by all blocks of a stage.

    Example:
        >>> PyramidPooling(8, (1, 2))(torch.randn(2, 8, 4, 4)).shape
        torch.Size([2, 20, 8])
    """

    def __init__(self, dim: int, pool_ratios: Sequence[int]) -> None:
        super().__init__()
        for ratio in pool_ratios:
            check_int("pool_ratios", ratio)
        self.pool_ratios = tuple(pool_ratios)
        self.d_convs = nn.ModuleList([nn.Conv2d(dim, dim, 3, padding=1, groups=dim) for _ in pool_ratios])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = []
        for ratio, conv in zip(self.pool_ratios, self.d_convs):
            level = pyramid_pool(x, ratio)  # (B, C, H/r, W/r)
            level = level + conv(level)
            pooled.append(level.flatten(2))  # (B, C, H/r * W/r)
        return torch.cat(pooled, dim=2).transpose(1, 2)  # (B, M, C)


class PoolingAttention(nn.Module):
    """P-MHSA (Eq. 3-4): queries from every token, keys / values from the LayerNorm-ed pooled pyramid.
    ``forward(x, height, width)`` with x (B, H*W, C).

    Example:
        >>> attn = PoolingAttention(8, 2, PyramidPooling(8, (1, 2)))
        >>> attn(torch.randn(2, 16, 8), 4, 4).shape
        torch.Size([2, 16, 8])
    """

    def __init__(self, dim: int, num_heads: int, pyramid: PyramidPooling, qkv_bias: bool = True) -> None:
        super().__init__()
        check_heads(dim, num_heads)
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)
        self.pyramid = pyramid  # shared by the stage's blocks (same module object)

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        q = rearrange(self.q(x), "b n (h d) -> b h n d", h=self.num_heads)
        x_map = rearrange(x, "b (hh ww) c -> b c hh ww", hh=height, ww=width)
        pooled = self.norm(self.pyramid(x_map))  # (B, M, C)
        k, v = rearrange(self.kv(pooled), "b m (two h d) -> two b h m d", two=2, h=self.num_heads)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, heads, N, d)
        return self.proj(rearrange(out, "b h n d -> b n (h d)"))


class IRB(nn.Module):
    """Inverted-bottleneck feed-forward (Eq. 5) on tokens: 1x1 conv, Hardswish, depthwise 3x3, Hardswish,
    1x1 conv. ``forward(x, height, width)`` with x (B, H*W, C).

    Example:
        >>> IRB(8, 32)(torch.randn(2, 16, 8), 4, 4).shape
        torch.Size([2, 16, 8])
    """

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.act = nn.Hardswish()
        self.conv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        x = rearrange(x, "b (hh ww) c -> b c hh ww", hh=height, ww=width)
        x = self.fc2(self.act(self.conv(self.act(self.fc1(x)))))
        return x.flatten(2).transpose(1, 2)  # -> (B, H*W, C)


class P2TBlock(nn.Module):
    """P2T block: ``x + P-MHSA(LN(x))`` then ``x + IRB(LN(x))`` on (B, H*W, C) tokens.

    Example:
        >>> P2TBlock(8, 2, 4.0, PyramidPooling(8, (1, 2)))(torch.randn(1, 16, 8), 4, 4).shape
        torch.Size([1, 16, 8])
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, pyramid: PyramidPooling, drop_path: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = PoolingAttention(dim, num_heads, pyramid)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = IRB(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), height, width))
        return x + self.drop_path(self.mlp(self.norm2(x), height, width))


class P2TStage(nn.Module):
    """P2T blocks (sharing one :class:`PyramidPooling`) on the tokens of a (B, C, H, W) map; returns the map.

    Example:
        >>> P2TStage(8, 1, 2, 4.0, (1, 2), [0.0])(torch.randn(1, 8, 4, 4)).shape
        torch.Size([1, 8, 4, 4])
    """

    def __init__(self, dim: int, depth: int, num_heads: int, mlp_ratio: float, pool_ratios: Sequence[int],
                 drop_path: Sequence[float]) -> None:
        super().__init__()
        self.pyramid = PyramidPooling(dim, pool_ratios)
        self.blocks = nn.ModuleList([P2TBlock(dim, num_heads, mlp_ratio, self.pyramid, drop_path[i]) for i in range(depth)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[2], x.shape[3]
        tokens = x.flatten(2).transpose(1, 2)  # (B, C, H, W) -> (B, H*W, C)
        for block in self.blocks:
            tokens = block(tokens, height, width)
        return tokens.transpose(1, 2).reshape(x.shape)


class PyramidPoolingTransformer(ImageBackbone):
    """P2T (Wu et al., TPAMI 2022).

    Example:
        >>> model = PyramidPoolingTransformer(dims=(8, 16, 24, 32), depths=(1, 1, 1, 1), num_heads=(1, 2, 2, 4),
        ...                                   num_classes=3)
        >>> model(torch.randn(1, 3, 64, 64)).shape
        torch.Size([1, 3])
    """

    default_input_size = 224

    def __init__(self, dims: Sequence[int] = (48, 96, 240, 384), depths: Sequence[int] = (2, 2, 6, 3),
                 num_heads: Sequence[int] = (1, 2, 5, 8), mlp_ratios: Sequence[float] = (8, 8, 4, 4),
                 pool_ratios: Sequence[Sequence[int]] = P2T_POOL_RATIOS, num_classes: int = 1000, in_chans: int = 3,
                 drop_path_rate: float = 0.1, overlapping_embed: bool = True) -> None:
        super().__init__()
        self.in_chans = in_chans
        check_int("num_classes", num_classes, minimum=0)
        check_int("in_chans", in_chans)
        check_probability("drop_path_rate", drop_path_rate)
        for name, values in (("dims", dims), ("depths", depths), ("num_heads", num_heads), ("mlp_ratios", mlp_ratios),
                             ("pool_ratios", pool_ratios)):
            if len(values) != 4:
                raise ValueError(f"{name} must have 4 entries (one per stage), got {list(values)!r}")
        self.num_classes = num_classes
        self.num_features = dims[-1]
        rates = linear_drop_path_rates(drop_path_rate, sum(depths))
        embeds: List[nn.Module] = []
        stages: List[nn.Module] = []
        start, in_dim = 0, in_chans
        for index in range(4):
            stride = 4 if index == 0 else 2
            kernel = (7 if index == 0 else 3) if overlapping_embed else stride
            padding = kernel // 2 if kernel > stride else 0  # overlapping: "same"-style; patchify: none
            # k x k conv with stride s, then LayerNorm (eps 1e-5) over the channels of each position
            embeds.append(PatchEmbed(in_dim, dims[index], kernel, stride=stride, padding=padding,
                                     norm_layer=LayerNorm2d))
            stages.append(P2TStage(dims[index], depths[index], num_heads[index], mlp_ratios[index], pool_ratios[index],
                                   rates[start:start + depths[index]]))
            start += depths[index]
            in_dim = dims[index]
        self.patch_embeds = nn.ModuleList(embeds)
        self.stages = nn.ModuleList(stages)
        self.head = nn.Linear(dims[-1], num_classes) if num_classes > 0 else nn.Identity()
        init_trunc_normal_(self)  # official init: truncated normal (std 0.02) linears, zero bias

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_chans, H, W) -> last-stage tokens (B, H/32 * W/32, dims[-1])."""
        for embed, stage in zip(self.patch_embeds, self.stages):
            x = stage(embed(x))
        return x.flatten(2).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x).mean(dim=1))

    def convert_external_state_dict(self, state_dict: Mapping[str, torch.Tensor], source: str) -> Dict[str, torch.Tensor]:
        """The official code's names (``source="official"``) to ours: ``patch_embed{i}`` ->
        ``patch_embeds.{i-1}``, ``d_convs{i}`` -> ``stages.{i-1}.pyramid.d_convs`` (also reached through
        every block's ``attn.pyramid``: the same module, so the same tensors), ``block{i}.{j}`` ->
        ``stages.{i-1}.blocks.{j}``, ``attn.q.0`` / ``attn.kv.0`` -> ``attn.q`` / ``attn.kv``. Other sources
        pass through."""
        if source != "official":
            return dict(state_dict)
        renamed = remap_keys(state_dict, [
            (r"^patch_embed(\d)\.", lambda m: f"patch_embeds.{int(m.group(1)) - 1}."),
            (r"^d_convs(\d)\.", lambda m: f"stages.{int(m.group(1)) - 1}.pyramid.d_convs."),
            (r"^block(\d)\.", lambda m: f"stages.{int(m.group(1)) - 1}.blocks."),
            (r"\.attn\.(q|kv)\.0\.", r".attn.\1."),
        ])
        for key in self.state_dict():  # the shared pyramid, seen from each block
            shared = re.sub(r"\.blocks\.\d+\.attn\.pyramid\.", ".pyramid.", key)
            if shared != key and shared in renamed:
                renamed[key] = renamed[shared]
        return renamed


P2T_PAPER = "Wu, Liu, Zhan, Cheng: P2T: Pyramid Pooling Transformer for Scene Understanding"


@register_backbone("p2t_tiny", family="vit", paper=P2T_PAPER, venue="TPAMI", year=2022, params=11_590_840)
def p2t_tiny(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> PyramidPoolingTransformer:
    """P2T-Tiny as published: widths (48, 96, 240, 384), depths (2, 2, 6, 3), overlapping patch embeddings
    (11,590,840 parameters, the official ``p2t_tiny``; README: 11.6M, 1.8 GFLOPs).

    Example:
        >>> p2t_tiny(num_classes=0)(torch.randn(1, 3, 64, 64)).shape
        torch.Size([1, 384])
    """
    return PyramidPoolingTransformer(num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_backbone("p2t_tiny_v1", family="vit", paper=P2T_PAPER, venue="arXiv", year=2021, params=11_100_000)
def p2t_tiny_v1(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> PyramidPoolingTransformer:
    """P2T-Tiny of the first code release (arXiv v1, September 2021): widths (64, 128, 320, 512), depths
    (2, 2, 2, 2), 4x4 / 2x2 patchify embeddings: 11,109,864 parameters (that release's README: 11.1M).

    Example:
        >>> p2t_tiny_v1(num_classes=0)(torch.randn(1, 3, 64, 64)).shape
        torch.Size([1, 512])
    """
    kwargs = {"dims": (64, 128, 320, 512), "depths": (2, 2, 2, 2), "overlapping_embed": False, **kwargs}
    return PyramidPoolingTransformer(num_classes=num_classes, in_chans=in_chans, **kwargs)
