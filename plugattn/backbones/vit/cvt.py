"""CvT-13: Convolutional vision Transformer.

Paper: Haiping Wu, Bin Xiao, Noel Codella, Mengchen Liu, Xiyang Dai, Lu Yuan, Lei Zhang, "CvT: Introducing
Convolutions to Vision Transformers", ICCV 2021. Section 3, Fig. 2 and Table 2:

* three stages; each starts with a Convolutional Token Embedding: a strided conv (7x7/s4/p2 to 64,
  3x3/s2/p1 to 192, 3x3/s2/p1 to 384) followed by LayerNorm over the channels;
* Convolutional Transformer blocks (1, 2, 10 per stage; 1, 3, 6 heads; MLP ratio 4, QuickGELU
  ``x * sigmoid(1.702 x)`` between the MLP's two layers, as the official ``get_cls_model`` builds it with
  ``act_layer=QuickGELU``; ``act="gelu"`` gives the exact GELU instead): pre-norm, and the attention's
  Q, K, V come from a Convolutional Projection --
  depthwise 3x3 conv + BatchNorm on the token map (stride 1 for Q, stride 2 for K and V, "squeezed"
  projection, Section 3.2), then a Linear per Q/K/V;
* no position embedding; the class token is added only in the last stage (FIRST in the sequence, it
  bypasses the convolutional projection), and a final LayerNorm on it feeds the linear head.

Not in timm. The architecture follows the official code (microsoft/CvT, ``cls_cvt.py`` with
``cvt-13-224x224.yaml``: qkv bias on, LayerNorm eps 1e-5, attention scale ``dim ** -0.5`` over the whole
stage width, as the official code and HF's ``CvtSelfAttention`` do, rather than per head). Reference count: 20.0M -- the paper's Table 2 "20M" and the 20.0M
listed for the HF port of ``microsoft/cvt-13`` (transformers' ``CvtForImageClassification``; found by
search, transformers is not installed here to rebuild it). We measure 19,997,480 (1000 classes),
0.01% from it.
Attention is computed with ``F.scaled_dot_product_attention``.

Every input size divisible by 16 works (no position embeddings; the K/V stride-2 projection uses padding
1, so odd maps work too); tests cover 224 and 64.

Injection sites producing (B, C, H, W) maps: every :class:`ConvEmbed` (3) and every
:class:`ConvProjection` (Q, K, V of each block: 39 in CvT-13). :class:`CvTBlock` and :class:`CvTStage`
produce tokens / (map, class token) pairs and are refused by the injector.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple

import torch
import torch.fx
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from ..._validate import check_int
from ..layers import DropPath, ImageBackbone, Mlp, check_heads, check_rate, init_trunc_normal_
from ..registry import register_backbone

# einops cannot see torch.fx proxies: record rearrange as one opaque call so the models stay traceable
torch.fx.wrap("rearrange")

__all__ = ["ConvEmbed", "ConvProjection", "ConvAttention", "CvTBlock", "CvTStage", "CvT", "cvt_13"]


class ConvEmbed(nn.Module):
    """Convolutional token embedding: strided conv, then LayerNorm over channels; (B, C_in, H, W) -> map.

    Example:
        >>> ConvEmbed(3, 64, 7, 4, 2)(torch.randn(1, 3, 224, 224)).shape
        torch.Size([1, 64, 56, 56])
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding)
        self.norm = nn.LayerNorm(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)
        x = self.norm(x.permute(0, 2, 3, 1))  # LayerNorm over C at every position
        return x.permute(0, 3, 1, 2)  # -> (B, C, H', W')


class ConvProjection(nn.Module):
    """Depthwise 3x3 conv (no bias) + BatchNorm on a token map; ``stride`` 2 squeezes K and V.

    Example:
        >>> ConvProjection(8, stride=2)(torch.randn(1, 8, 6, 6)).shape
        torch.Size([1, 8, 3, 3])
    """

    def __init__(self, dim: int, stride: int = 1, kernel_size: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, kernel_size, stride, kernel_size // 2, groups=dim, bias=False)
        self.bn = nn.BatchNorm2d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class ConvAttention(nn.Module):
    """Multi-head attention whose Q, K, V come from convolutional projections of the token map
    (Section 3.2); the class token (if any, first) is passed to the Linear projections unchanged.

    Example:
        >>> attn = ConvAttention(16, num_heads=2)
        >>> attn(torch.randn(2, 1 + 36, 16), 6, 6, with_cls_token=True).shape
        torch.Size([2, 37, 16])
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, kv_stride: int = 2) -> None:
        super().__init__()
        check_heads(dim, num_heads)
        self.num_heads = num_heads
        self.scale = dim ** -0.5  # official CvT code: the full width, not the head width
        self.conv_proj_q = ConvProjection(dim, 1)
        self.conv_proj_k = ConvProjection(dim, kv_stride)
        self.conv_proj_v = ConvProjection(dim, kv_stride)
        self.proj_q = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj_k = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj_v = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, height: int, width: int, with_cls_token: bool = False) -> torch.Tensor:
        prefix = 1 if with_cls_token else 0
        cls_token = x[:, :prefix]  # (B, 0 or 1, C)
        x_map = rearrange(x[:, prefix:], "b (h w) c -> b c h w", h=height, w=width)
        heads = []
        for conv, linear in ((self.conv_proj_q, self.proj_q), (self.conv_proj_k, self.proj_k),
                             (self.conv_proj_v, self.proj_v)):
            tokens = torch.cat([cls_token, rearrange(conv(x_map), "b c h w -> b (h w) c")], dim=1)
            heads.append(rearrange(linear(tokens), "b n (h d) -> b h n d", h=self.num_heads))
        out = F.scaled_dot_product_attention(heads[0], heads[1], heads[2], scale=self.scale)
        return self.proj(rearrange(out, "b h n d -> b n (h d)"))


class CvTBlock(nn.Module):
    """Convolutional Transformer block: pre-norm conv-attention and MLP with residuals (tokens -> tokens).

    Example:
        >>> CvTBlock(16, num_heads=2)(torch.randn(1, 16, 16), 4, 4).shape
        torch.Size([1, 16, 16])
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 drop_path: float = 0.0, with_cls_token: bool = False, act: str = "quick_gelu") -> None:
        super().__init__()
        self.with_cls_token = with_cls_token
        self.norm1 = nn.LayerNorm(dim)
        self.attn = ConvAttention(dim, num_heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act=act)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), height, width, self.with_cls_token))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class CvTStage(nn.Module):
    """Convolutional token embedding, optional class token (first), blocks; returns the map and the
    class token (None without one).

    Example:
        >>> x, cls_token = CvTStage(3, 16, 1, 2, 7, 4, 2, with_cls_token=True)(torch.randn(1, 3, 32, 32))
        >>> x.shape, cls_token.shape
        (torch.Size([1, 16, 8, 8]), torch.Size([1, 1, 16]))
    """

    def __init__(self, in_channels: int, dim: int, depth: int, num_heads: int, kernel_size: int, stride: int,
                 padding: int, mlp_ratio: float = 4.0, drop_path: Sequence[float] = (),
                 with_cls_token: bool = False, act: str = "quick_gelu") -> None:
        super().__init__()
        self.patch_embed = ConvEmbed(in_channels, dim, kernel_size, stride, padding)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if with_cls_token else None
        rates = list(drop_path) or [0.0] * depth
        self.blocks = nn.ModuleList([
            CvTBlock(dim, num_heads, mlp_ratio, True, rates[i], with_cls_token, act) for i in range(depth)
        ])

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        x = self.patch_embed(x)  # (B, C, h, w)
        height, width = x.shape[2], x.shape[3]
        tokens = rearrange(x, "b c h w -> b (h w) c")
        if self.cls_token is not None:
            tokens = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), tokens], dim=1)
        for block in self.blocks:
            tokens = block(tokens, height, width)
        if self.cls_token is None:
            return rearrange(tokens, "b (h w) c -> b c h w", h=height, w=width), None
        x = rearrange(tokens[:, 1:], "b (h w) c -> b c h w", h=height, w=width)
        return x, tokens[:, :1]


class CvT(ImageBackbone):
    """CvT: three convolutional-embedding stages, class token in the last, LayerNorm + linear head on it.

    Example:
        >>> model = CvT(dims=(8, 16, 32), depths=(1, 1, 1), heads=(1, 2, 4), num_classes=5)
        >>> model(torch.randn(2, 3, 64, 64)).shape
        torch.Size([2, 5])
        >>> model.forward_features(torch.randn(2, 3, 64, 64)).shape
        torch.Size([2, 32, 4, 4])
    """

    default_input_size = 224

    def __init__(
        self,
        dims: Sequence[int] = (64, 192, 384),
        depths: Sequence[int] = (1, 2, 10),
        heads: Sequence[int] = (1, 3, 6),
        mlp_ratio: float = 4.0,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_path_rate: float = 0.1,
        act: str = "quick_gelu",
    ) -> None:
        super().__init__()
        self.in_chans = in_chans
        check_int("num_classes", num_classes, minimum=0)
        check_int("in_chans", in_chans)
        check_rate("drop_path_rate", drop_path_rate)
        if not len(dims) == len(depths) == len(heads) == 3:
            raise ValueError(f"dims, depths and heads need 3 entries (one per stage), got {list(dims)}, "
                             f"{list(depths)}, {list(heads)}")
        for dim, num_heads in zip(dims, heads):
            check_heads(dim, num_heads)
        for depth in depths:
            check_int("depths", depth)
        self.num_classes = num_classes
        self.num_features = dims[-1]
        embeds = ((7, 4, 2), (3, 2, 1), (3, 2, 1))  # (kernel, stride, padding) of each token embedding
        stages = []
        in_channels = in_chans
        for i, (dim, depth, num_heads) in enumerate(zip(dims, depths, heads)):
            # the official config sets stochastic depth only in the last stage (DROP_PATH_RATE [0, 0, 0.1])
            rate = drop_path_rate if i == 2 else 0.0
            rates = [rate * j / max(depth - 1, 1) for j in range(depth)]
            stages.append(CvTStage(in_channels, dim, depth, num_heads, *embeds[i], mlp_ratio=mlp_ratio,
                                   drop_path=rates, with_cls_token=i == 2, act=act))
            in_channels = dim
        self.stages = nn.ModuleList(stages)
        self.norm = nn.LayerNorm(dims[-1])
        self.head = nn.Linear(dims[-1], num_classes) if num_classes > 0 else nn.Identity()

        init_trunc_normal_(self)  # official init: truncated normal 0.02 for Linear, zero bias
        for stage in self.stages:
            if stage.cls_token is not None:
                nn.init.trunc_normal_(stage.cls_token, std=0.02)

    def forward_tokens(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(B, in_chans, H, W) -> last map (B, C, H/16, W/16) and class token (B, 1, C)."""
        x, _ = self.stages[0](x)
        x, _ = self.stages[1](x)
        return self.stages[2](x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_chans, H, W) -> the final map (B, dims[-1], H/16, W/16)."""
        return self.forward_tokens(x)[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, cls_token = self.forward_tokens(x)
        return self.head(self.norm(cls_token[:, 0]))


@register_backbone("cvt_13", family="vit", venue="ICCV", year=2021, params=20_000_000,
                   paper="Wu, Xiao, Codella, Liu, Dai, Yuan, Zhang: CvT: Introducing Convolutions to Vision Transformers")
def cvt_13(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> CvT:
    """CvT-13 (Table 2): dims (64, 192, 384), depths (1, 2, 10), heads (1, 3, 6): 19,997,480 parameters (paper: 20M).

    Example:
        >>> sum(len(stage.blocks) for stage in cvt_13().stages)
        13
    """
    return CvT((64, 192, 384), (1, 2, 10), (1, 3, 6), num_classes=num_classes, in_chans=in_chans, **kwargs)
