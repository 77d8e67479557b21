"""PiT-Ti: Pooling-based Vision Transformer.

Paper: Byeongho Heo, Sangdoo Yun, Dongyoon Han, Sanghyuk Chun, Junsuk Choe, Seong Joon Oh, "Rethinking
Spatial Dimensions of Vision Transformers", ICCV 2021. Section 3.2 / Fig. 4 and Table 1:

* patch embedding: a 16 x 16 convolution with stride 8 (overlapping patches; a 27 x 27 grid at 224),
  plus a learned position embedding of that map (1, C, 27, 27), plus one class token (first);
* three stages of ViT blocks (pre-norm MSA + MLP, GELU between the MLP's layers) with (2, 6, 4) blocks,
  (2, 4, 8) heads of 32 channels each: C = 64, 128, 256;
* between stages the pooling layer: the tokens are reshaped to their (B, C, H, W) map and a depthwise
  convolution (kernel 3, stride 2, channel multiplier 2) halves H and W and doubles C; the class token
  goes through a Linear C -> 2C;
* final LayerNorm on the class token, linear head.

Other input sizes: the position-embedding map is resized bicubically to the input's patch grid at run
time (inside an ``torch.fx.wrap``-ed function); every later shape follows the input.

Parameter names are timm's (``patch_embed.conv``, ``transformers.i.pool.conv/fc``,
``transformers.i.blocks.j``), so ``timm.create_model("pit_ti_224")`` weights load unchanged. Init as
timm: position embedding and class token truncated normal (std 0.02), PyTorch defaults elsewhere.

Reference parameter count (1000 classes): 4,847,272 -- timm's ``pit_ti_224``, re-measured by building it
here (the paper's Table 4 rounds PiT-Ti to 4.9M).

Injection sites producing (B, C, H, W) maps: :class:`ConvEmbedding` (the patch embedding) and the
pooling's depthwise ``Conv2d`` (``transformers.1.pool.conv``, ``transformers.2.pool.conv``) --
``after="Conv2d"`` selects all three. :class:`Pooling` returns a (map, class token) pair and
:class:`~plugattn.backbones.layers.Block` returns tokens: the injector refuses both.
"""
from __future__ import annotations

from typing import Any, Sequence, Tuple

import torch
import torch.fx
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from ..._validate import check_int
from ..layers import Block, ImageBackbone, check_rate, linear_drop_path_rates
from ..registry import register_backbone

# einops cannot see torch.fx proxies: record rearrange as one opaque call so the models stay traceable
torch.fx.wrap("rearrange")

__all__ = ["ConvEmbedding", "Pooling", "PiTStage", "PoolingVisionTransformer", "resize_pos_map", "pit_ti_224"]


def resize_pos_map(pos_embed: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """A (1, C, h, w) position-embedding map resized bicubically to ``height`` x ``width``
    (returned as is when the size already fits). Wrapped with ``torch.fx.wrap``.

    Example:
        >>> resize_pos_map(torch.zeros(1, 4, 27, 27), 7, 7).shape
        torch.Size([1, 4, 7, 7])
    """
    if tuple(pos_embed.shape[2:]) == (height, width):
        return pos_embed
    return F.interpolate(pos_embed, size=(height, width), mode="bicubic", align_corners=False)


torch.fx.wrap("resize_pos_map")


class ConvEmbedding(nn.Module):
    """Overlapping patch embedding: ``patch_size`` convolution with ``stride``; returns the (B, C, h, w) map.

    Example:
        >>> ConvEmbedding(3, 64)(torch.randn(1, 3, 224, 224)).shape
        torch.Size([1, 64, 27, 27])
    """

    def __init__(self, in_channels: int, out_channels: int, patch_size: int = 16, stride: int = 8) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=patch_size, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Pooling(nn.Module):
    """PiT pooling layer: depthwise conv (kernel stride+1, channel multiplier out/in) on the map,
    Linear on the class token.

    Example:
        >>> x, cls = Pooling(64, 128)(torch.randn(1, 64, 27, 27), torch.randn(1, 1, 64))
        >>> x.shape, cls.shape
        (torch.Size([1, 128, 14, 14]), torch.Size([1, 1, 128]))
    """

    def __init__(self, in_features: int, out_features: int, stride: int = 2) -> None:
        super().__init__()
        if out_features % in_features:
            raise ValueError(f"out_features must be a multiple of in_features={in_features}, got {out_features}")
        self.conv = nn.Conv2d(in_features, out_features, kernel_size=stride + 1, padding=stride // 2, stride=stride,
                              groups=in_features)
        self.fc = nn.Linear(in_features, out_features)

    def forward(self, x: torch.Tensor, cls_token: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return self.conv(x), self.fc(cls_token)  # (B, 2C, H/2, W/2), (B, 1, 2C)


class PiTStage(nn.Module):
    """Optional pooling, then ViT blocks on [class token; map tokens]; returns the map and class token.

    Example:
        >>> stage = PiTStage(32, depth=1, heads=2)
        >>> x, cls = stage(torch.randn(1, 64, 5, 5), torch.randn(1, 1, 64))
        >>> x.shape
        torch.Size([1, 64, 5, 5])
    """

    def __init__(self, base_dim: int, depth: int, heads: int, mlp_ratio: float = 4.0, in_dim: int = 0,
                 drop_path: Sequence[float] = ()) -> None:
        super().__init__()
        dim = base_dim * heads
        self.pool = Pooling(in_dim, dim) if in_dim else None
        rates = list(drop_path) or [0.0] * depth
        self.blocks = nn.Sequential(*[Block(dim, heads, mlp_ratio, qkv_bias=True, drop_path=rates[i])
                                      for i in range(depth)])

    def forward(self, x: torch.Tensor, cls_token: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        if self.pool is not None:
            x, cls_token = self.pool(x, cls_token)
        height, width = x.shape[2], x.shape[3]
        tokens = torch.cat([cls_token, rearrange(x, "b c h w -> b (h w) c")], dim=1)  # class token first
        tokens = self.blocks(tokens)
        x = rearrange(tokens[:, 1:], "b (h w) c -> b c h w", h=height, w=width)
        return x, tokens[:, :1]


class PoolingVisionTransformer(ImageBackbone):
    """PiT: ViT stages separated by spatial pooling (channels x2, resolution /2).

    Example:
        >>> model = PoolingVisionTransformer(base_dims=(8, 8), depth=(1, 1), heads=(2, 4), num_classes=3)
        >>> model(torch.randn(2, 3, 64, 64)).shape
        torch.Size([2, 3])
    """

    default_input_size = 224

    def __init__(
        self,
        img_size: int = 224,
        patch_size: int = 16,
        stride: int = 8,
        base_dims: Sequence[int] = (32, 32, 32),
        depth: Sequence[int] = (2, 6, 4),
        heads: Sequence[int] = (2, 4, 8),
        mlp_ratio: float = 4.0,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self.in_chans = in_chans
        for name, value in (("img_size", img_size), ("patch_size", patch_size), ("stride", stride),
                            ("in_chans", in_chans)):
            check_int(name, value)
        check_int("num_classes", num_classes, minimum=0)
        check_rate("drop_path_rate", drop_path_rate)
        if not len(base_dims) == len(depth) == len(heads) >= 1:
            raise ValueError(f"base_dims, depth and heads need one entry per stage, got {list(base_dims)}, "
                             f"{list(depth)}, {list(heads)}")
        if img_size < patch_size:
            raise ValueError(f"img_size must be >= patch_size={patch_size}, got {img_size}")
        self.num_classes = num_classes
        self.default_input_size = img_size
        dims = [b * h for b, h in zip(base_dims, heads)]
        self.num_features = self.embed_dim = dims[-1]
        grid = (img_size - patch_size) // stride + 1

        self.patch_embed = ConvEmbedding(in_chans, dims[0], patch_size, stride)
        self.pos_embed = nn.Parameter(torch.zeros(1, dims[0], grid, grid))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dims[0]))
        total = sum(depth)
        rates = linear_drop_path_rates(drop_path_rate, total)
        stages, start = [], 0
        for i, (base_dim, stage_depth, stage_heads) in enumerate(zip(base_dims, depth, heads)):
            stages.append(PiTStage(base_dim, stage_depth, stage_heads, mlp_ratio, in_dim=dims[i - 1] if i else 0,
                                   drop_path=rates[start:start + stage_depth]))
            start += stage_depth
        self.transformers = nn.ModuleList(stages)
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        self.head = nn.Linear(dims[-1], num_classes) if num_classes > 0 else nn.Identity()

        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_chans, H, W) -> normalised class token (B, 1, C_last) (the map tokens end the last stage)."""
        x = self.patch_embed(x)  # (B, C0, h, w)
        x = x + resize_pos_map(self.pos_embed, x.shape[2], x.shape[3])
        cls_token = self.cls_token.expand(x.shape[0], -1, -1)  # (B, 1, C0)
        for stage in self.transformers:
            x, cls_token = stage(x, cls_token)
        return self.norm(cls_token)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x)[:, 0])  # (B, num_classes)


@register_backbone("pit_ti_224", family="vit", aliases=("pit_ti",), venue="ICCV", year=2021, params=4_847_272,
                   paper="Heo, Yun, Han, Chun, Choe, Oh: Rethinking Spatial Dimensions of Vision Transformers")
def pit_ti_224(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> PoolingVisionTransformer:
    """PiT-Ti: base dim 32, depths (2, 6, 4), heads (2, 4, 8) (timm: 4,847,272 parameters).

    Example:
        >>> pit_ti_224().num_features
        256
    """
    return PoolingVisionTransformer(num_classes=num_classes, in_chans=in_chans, base_dims=(32, 32, 32),
                                    depth=(2, 6, 4), heads=(2, 4, 8), **kwargs)
