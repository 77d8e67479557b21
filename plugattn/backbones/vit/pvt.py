"""PVT-Tiny (v1): Pyramid Vision Transformer.

Paper: Wenhai Wang, Enze Xie, Xiang Li, Deng-Ping Fan, Kaitao Song, Ding Liang, Tong Lu, Ping Luo, Ling Shao,
"Pyramid Vision Transformer: A Versatile Backbone for Dense Prediction without Convolutions", ICCV 2021.
Section 3, Eq. (1)-(3) and Table 1 (PVT-Tiny):

* four stages; each starts with a patch embedding (a P_i x P_i conv with stride P_i, P = 4, 2, 2, 2,
  then LayerNorm) and adds learned position embeddings;
* blocks are pre-norm transformer blocks whose attention is spatial-reduction attention (SRA, Eq. (2)-(3)):
  keys and values come from the map reduced by an R_i x R_i conv with stride R_i (R = 8, 4, 2, 1) and a
  LayerNorm; queries keep every token;
* Tiny: C = (64, 128, 320, 512), heads (1, 2, 5, 8), MLP ratios (8, 8, 4, 4), 2 blocks per stage;
* the class token joins only in the last stage (FIRST, with its own position embedding), then a final
  LayerNorm and the linear head on it (official code, whai362/PVT ``classification/pvt.py``).

Other input sizes: the position embeddings are resized bilinearly to each stage's grid at run time, as
the official code does for dense prediction (inside ``torch.fx.wrap``-ed calls).

Not in timm (timm has PVT v2 only, a different model: overlapping patch embeddings, conv FFN, no
position embeddings). Reference parameter count: 13.2M, the paper's Table 1 for PVT-Tiny; we measure
13,229,288 (1000 classes) by building this model. Init as the official code: truncated normal (std 0.02)
for Linear weights and position embeddings / class token, zero biases.

Injection sites producing (B, C, H, W) maps: :class:`~plugattn.backbones.layers.PatchEmbed` (4, after its
LayerNorm) and the spatial-reduction convs inside :class:`SpatialReductionAttention` (``name:*.attn.sr``).
Blocks and stages produce tokens (the injector refuses them).
"""
from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple

import torch
import torch.fx
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from ..._validate import check_int
from ..layers import (
    DropPath, ImageBackbone, LayerNorm2d, Mlp, PatchEmbed, check_heads, check_rate, init_trunc_normal_,
    linear_drop_path_rates, resize_pos_embed,
)
from ..registry import register_backbone

# einops cannot see torch.fx proxies: record rearrange as one opaque call so the models stay traceable
torch.fx.wrap("rearrange")
# resizing branches on the grid size: keep it one opaque call in traced graphs
torch.fx.wrap("resize_pos_embed")

__all__ = ["SpatialReductionAttention", "PVTBlock", "PVTStage", "PyramidVisionTransformer",
           "pvt_tiny"]


class SpatialReductionAttention(nn.Module):
    """SRA, Eq. (2)-(3): queries from every token, keys/values from the map reduced ``sr_ratio`` times
    (conv with stride ``sr_ratio`` + LayerNorm). With a class token (first, ``prefix`` 1) and sr_ratio 1
    it is plain attention over all tokens.

    Example:
        >>> SpatialReductionAttention(16, 2, sr_ratio=2)(torch.randn(1, 16, 16), 4, 4).shape
        torch.Size([1, 16, 16])
    """

    def __init__(self, dim: int, num_heads: int, sr_ratio: int = 1, qkv_bias: bool = True) -> None:
        super().__init__()
        check_heads(dim, num_heads)
        check_int("sr_ratio", sr_ratio)
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, dim * 2, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.sr_ratio = sr_ratio
        if sr_ratio > 1:
            self.sr = nn.Conv2d(dim, dim, kernel_size=sr_ratio, stride=sr_ratio)
            self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        q = rearrange(self.q(x), "b n (h d) -> b h n d", h=self.num_heads)
        if self.sr_ratio > 1:
            x_map = rearrange(x, "b (h w) c -> b c h w", h=height, w=width)
            x = self.norm(rearrange(self.sr(x_map), "b c h w -> b (h w) c"))  # (B, N / R^2, C)
        kv = rearrange(self.kv(x), "b n (two h d) -> two b h n d", two=2, h=self.num_heads)
        out = F.scaled_dot_product_attention(q, kv[0], kv[1])
        return self.proj(rearrange(out, "b h n d -> b n (h d)"))


class PVTBlock(nn.Module):
    """Pre-norm block: ``x + SRA(LN(x))``, ``x + MLP(LN(x))`` (tokens -> tokens).

    Example:
        >>> PVTBlock(16, 2, mlp_ratio=4, sr_ratio=2)(torch.randn(1, 16, 16), 4, 4).shape
        torch.Size([1, 16, 16])
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, sr_ratio: int, drop_path: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = SpatialReductionAttention(dim, num_heads, sr_ratio)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), height, width))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PVTStage(nn.Module):
    """Patch embedding, position embedding (resized to the grid), optional class token (first), blocks.
    Returns the map and the class token (None without one).

    Example:
        >>> x, cls_token = PVTStage(3, 16, 4, 1, 1, 2, 2, grid=8)(torch.randn(1, 3, 32, 32))
        >>> x.shape, cls_token
        (torch.Size([1, 16, 8, 8]), None)
    """

    def __init__(self, in_channels: int, dim: int, patch_size: int, depth: int, num_heads: int, mlp_ratio: float,
                 sr_ratio: int, grid: int, drop_path: Sequence[float] = (), with_cls_token: bool = False) -> None:
        super().__init__()
        # non-overlapping patches (conv, stride = kernel), LayerNorm over the channels; the (B, C, h, w) map
        self.patch_embed = PatchEmbed(in_channels, dim, patch_size, norm_layer=LayerNorm2d)
        self.grid = (grid, grid)
        self.prefix = 1 if with_cls_token else 0
        self.pos_embed = nn.Parameter(torch.zeros(1, self.prefix + grid * grid, dim))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if with_cls_token else None
        rates = list(drop_path) or [0.0] * depth
        self.blocks = nn.ModuleList([PVTBlock(dim, num_heads, mlp_ratio, sr_ratio, rates[i]) for i in range(depth)])

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        x = self.patch_embed(x)  # (B, C, h, w)
        height, width = x.shape[2], x.shape[3]
        pos_embed = resize_pos_embed(self.pos_embed, self.grid, height, width, self.prefix, mode="bilinear")
        tokens = rearrange(x, "b c h w -> b (h w) c")
        if self.cls_token is not None:
            tokens = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), tokens], dim=1)
        tokens = tokens + pos_embed
        for block in self.blocks:
            tokens = block(tokens, height, width)
        x = rearrange(tokens[:, self.prefix:], "b (h w) c -> b c h w", h=height, w=width)
        return x, (tokens[:, :1] if self.cls_token is not None else None)


class PyramidVisionTransformer(ImageBackbone):
    """PVT v1: four SRA stages (class token in the last), LayerNorm + linear head on the class token.

    Example:
        >>> model = PyramidVisionTransformer(img_size=64, dims=(8, 16, 24, 32), heads=(1, 2, 3, 4),
        ...                                  depths=(1, 1, 1, 1), num_classes=5)
        >>> model(torch.randn(2, 3, 64, 64)).shape
        torch.Size([2, 5])
    """

    default_input_size = 224

    def __init__(
        self,
        img_size: int = 224,
        dims: Sequence[int] = (64, 128, 320, 512),
        heads: Sequence[int] = (1, 2, 5, 8),
        mlp_ratios: Sequence[float] = (8, 8, 4, 4),
        depths: Sequence[int] = (2, 2, 2, 2),
        sr_ratios: Sequence[int] = (8, 4, 2, 1),
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_path_rate: float = 0.1,
    ) -> None:
        super().__init__()
        self.in_chans = in_chans
        check_int("img_size", img_size)
        check_int("in_chans", in_chans)
        check_int("num_classes", num_classes, minimum=0)
        check_rate("drop_path_rate", drop_path_rate)
        if not len(dims) == len(heads) == len(mlp_ratios) == len(depths) == len(sr_ratios) == 4:
            raise ValueError("dims, heads, mlp_ratios, depths and sr_ratios need 4 entries (one per stage), got "
                             f"{list(dims)}, {list(heads)}, {list(mlp_ratios)}, {list(depths)}, {list(sr_ratios)}")
        if img_size % 32:
            raise ValueError(f"img_size must be a multiple of 32 (total patch stride), got {img_size}")
        for depth in depths:
            check_int("depths", depth)
        self.num_classes = num_classes
        self.default_input_size = img_size
        self.num_features = dims[-1]
        total = sum(depths)
        rates = linear_drop_path_rates(drop_path_rate, total)
        stages, start, grid, in_channels = [], 0, img_size, in_chans
        for i in range(4):
            patch = 4 if i == 0 else 2
            grid //= patch
            stages.append(PVTStage(in_channels, dims[i], patch, depths[i], heads[i], mlp_ratios[i], sr_ratios[i],
                                   grid, rates[start:start + depths[i]], with_cls_token=i == 3))
            start += depths[i]
            in_channels = dims[i]
        self.stages = nn.ModuleList(stages)
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        self.head = nn.Linear(dims[-1], num_classes) if num_classes > 0 else nn.Identity()

        init_trunc_normal_(self)  # truncated normal (std 0.02) linears, zero bias
        for stage in self.stages:
            nn.init.trunc_normal_(stage.pos_embed, std=0.02)
            if stage.cls_token is not None:
                nn.init.trunc_normal_(stage.cls_token, std=0.02)

    def forward_tokens(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(B, in_chans, H, W) -> last map (B, C, H/32, W/32) and class token (B, 1, C)."""
        for stage in self.stages[:3]:
            x, _ = stage(x)
        return self.stages[3](x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_chans, H, W) -> the final map (B, dims[-1], H/32, W/32)."""
        return self.forward_tokens(x)[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, cls_token = self.forward_tokens(x)
        return self.head(self.norm(cls_token[:, 0]))


@register_backbone("pvt_tiny", family="vit", aliases=("pvt_v1_tiny",), venue="ICCV", year=2021, params=13_200_000,
                   paper="Wang, Xie, Li, Fan, Song, Liang, Lu, Luo, Shao: Pyramid Vision Transformer: A Versatile "
                         "Backbone for Dense Prediction without Convolutions")
def pvt_tiny(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> PyramidVisionTransformer:
    """PVT-Tiny (v1, Table 1): dims (64, 128, 320, 512), 2 blocks per stage (paper: 13.2M parameters).

    Example:
        >>> len(pvt_tiny().stages)
        4
    """
    return PyramidVisionTransformer(num_classes=num_classes, in_chans=in_chans, **kwargs)
