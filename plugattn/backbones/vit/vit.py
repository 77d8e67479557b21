"""Vision Transformer (ViT-Ti/16, ViT-S/16, ViT-B/16).

Paper: Alexey Dosovitskiy, Lucas Beyer, Alexander Kolesnikov, Dirk Weissenborn, Xiaohua Zhai, Thomas
Unterthiner, Mostafa Dehghani, Matthias Minderer, Georg Heigold, Sylvain Gelly, Jakob Uszkoreit,
Neil Houlsby, "An Image is Worth 16x16 Words: Transformers for Image Recognition at Scale",
ICLR 2021. Section 3.1, Eq. (1)-(4):

* z_0 = [x_class; x_p^1 E; ...; x_p^N E] + E_pos  -- the learnable class token comes FIRST,
  position embeddings cover class token + N = HW/P^2 patches (the patch projection E is a
  P x P convolution with stride P);
* z'_l = MSA(LN(z_{l-1})) + z_{l-1};  z_l = MLP(LN(z'_l)) + z'_l  (pre-norm blocks);
* the MLP is Linear(D, 4D) -> GELU -> Linear(4D, D): GELU only BETWEEN the two layers;
* y = LN(z_L^0): the final LayerNorm, then the head reads token 0 (the class token).

Table 1 sizes: B/16 D=768, 12 layers, 12 heads; Ti/16 (D=192, 3 heads) and S/16 (D=384, 6 heads) are
the DeiT sizes (Touvron et al., ICML 2021) that timm also names ``vit_tiny/small_patch16_224``.
Attention is ``F.scaled_dot_product_attention`` (softmax(QK^T / sqrt(d)) V, Eq. (5)-(7) of App. A).

Other input sizes: the position embeddings of the patch grid (14 x 14 at 224) are resized
bicubically to the input's grid at run time (as in the paper's fine-tuning at higher resolution,
Section 3.2), inside an ``torch.fx.wrap``-ed function so the model stays traceable.

Parameter names are timm's (``patch_embed.proj``, ``blocks.i.attn.qkv``, ``mlp.fc1``, ``norm``,
``head``), so timm's ``vit_*_patch16_224`` state_dicts load unchanged. Init as timm: truncated normal
(std 0.02) for Linear weights and position embeddings, zero biases, class token N(0, 1e-6).

Reference parameter counts (1000 classes), timm's published counts, re-measured here by building
timm's models with random weights: vit_tiny_patch16_224 5,717,416; vit_small_patch16_224 22,050,664;
vit_base_patch16_224 86,567,656 (the paper's Table 1 rounds ViT-B to 86M).

Injection sites: the only module producing a (B, C, H, W) map is :class:`PatchEmbed` (the patch
projection, before flattening into tokens), e.g. ``inject_attention(model, "eca", after="PatchEmbed")``.
Every :class:`Block` maps tokens (B, N, C) to tokens, so the injector refuses it with its
"(B, C, H, W) feature map" error.
"""
from __future__ import annotations

from functools import partial
from typing import Any, Callable, Optional, Tuple

import torch
import torch.fx
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from ..._validate import check_int
from ..layers.mobile import check_probability
from ..layers.core import DropPath, ImageBackbone, get_act, init_trunc_normal_, linear_drop_path_rates
from ..registry import register_backbone

# einops cannot see torch.fx proxies: record rearrange as one opaque call so the models stay traceable
torch.fx.wrap("rearrange")

__all__ = [
    "Mlp",
    "Attention",
    "Block",
    "PatchEmbed",
    "VisionTransformer",
    "resize_pos_embed",
    "check_rate",
    "vit_tiny_patch16_224",
    "vit_small_patch16_224",
    "vit_base_patch16_224",
]


# a rate in [0, 1) (stochastic depth, dropout): the same rule as the mobile nets', under the name the
# transformer and MLP files import
check_rate = check_probability


def check_heads(dim: int, num_heads: int) -> None:
    """``ValueError`` unless ``num_heads`` >= 1 divides ``dim``.

    Example:
        >>> check_heads(192, 3)
    """
    check_int("dim", dim)
    check_int("num_heads", num_heads)
    if dim % num_heads:
        raise ValueError(f"num_heads must divide dim={dim}, got num_heads={num_heads}")


class Mlp(nn.Module):
    """Transformer MLP ``fc2(act(fc1(x)))`` on the last dimension; the activation sits only between
    the two layers (ViT Eq. (3)).

    Example:
        >>> Mlp(8, 32)(torch.randn(2, 5, 8)).shape
        torch.Size([2, 5, 8])
    """

    def __init__(self, in_features: int, hidden_features: int, out_features: Optional[int] = None,
                 act: str = "gelu", bias: bool = True) -> None:
        super().__init__()
        out_features = out_features or in_features
        self.fc1 = nn.Linear(in_features, hidden_features, bias=bias)
        self.act = get_act(act)
        self.fc2 = nn.Linear(hidden_features, out_features, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))  # (..., C) -> (..., hidden) -> (..., C_out)


class Attention(nn.Module):
    """Multi-head self-attention softmax(Q K^T / sqrt(d_head)) V over tokens, with
    ``F.scaled_dot_product_attention``.

    Example:
        >>> Attention(16, num_heads=2)(torch.randn(2, 5, 16)).shape
        torch.Size([2, 5, 16])
    """

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = True) -> None:
        super().__init__()
        check_heads(dim, num_heads)
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def split_heads(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, N, C) -> q, k, v each (B, heads, N, d_head)."""
        qkv = rearrange(self.qkv(x), "b n (three h d) -> three b h n d", three=3, h=self.num_heads)
        return qkv[0], qkv[1], qkv[2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.split_heads(x)
        x = F.scaled_dot_product_attention(q, k, v)  # (B, heads, N, d_head)
        x = rearrange(x, "b h n d -> b n (h d)")
        return self.proj(x)


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(LN(x))`` then ``x + mlp(LN(x))`` (ViT Eq. (2)-(3)).
    Tokens in, tokens out: (B, N, C) -> (B, N, C).

    Example:
        >>> Block(16, num_heads=2)(torch.randn(2, 5, 16)).shape
        torch.Size([2, 5, 16])
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 drop_path: float = 0.0, attn_layer: Optional[Callable[..., nn.Module]] = None) -> None:
        super().__init__()
        attn_layer = attn_layer or Attention
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = attn_layer(dim, num_heads=num_heads, qkv_bias=qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchEmbed(nn.Module):
    """Patch projection: a ``patch_size`` x ``patch_size`` convolution with the same stride.
    Returns the (B, C, H/P, W/P) map (the model flattens it into tokens).

    Example:
        >>> PatchEmbed(16, 3, 32)(torch.randn(1, 3, 64, 64)).shape
        torch.Size([1, 32, 4, 4])
    """

    def __init__(self, patch_size: int = 16, in_chans: int = 3, embed_dim: int = 768) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)  # (B, in_chans, H, W) -> (B, C, H/P, W/P)


def resize_pos_embed(pos_embed: torch.Tensor, grid: Tuple[int, int], height: int, width: int,
                     num_prefix_tokens: int = 1, mode: str = "bicubic") -> torch.Tensor:
    """Position embeddings (1, prefix + gh*gw, C) for a ``height`` x ``width`` patch grid: the grid part
    is resized (``mode``; bicubic is antialiased, as timm) when the grid differs, the prefix (class token) kept.

    Wrapped with ``torch.fx.wrap``: traced models record one call, the size test runs at run time.

    Example:
        >>> resize_pos_embed(torch.zeros(1, 1 + 4, 8), (2, 2), 3, 3).shape
        torch.Size([1, 10, 8])
    """
    if (height, width) == tuple(grid):
        return pos_embed
    prefix, patches = pos_embed[:, :num_prefix_tokens], pos_embed[:, num_prefix_tokens:]
    patches = rearrange(patches, "1 (h w) c -> 1 c h w", h=grid[0], w=grid[1])
    patches = F.interpolate(patches.float(), size=(height, width), mode=mode, align_corners=False,
                            antialias=mode == "bicubic").to(pos_embed.dtype)
    patches = rearrange(patches, "1 c h w -> 1 (h w) c")
    return torch.cat([prefix, patches], dim=1)


torch.fx.wrap("resize_pos_embed")


class VisionTransformer(ImageBackbone):
    """ViT: patch embedding, class token first, learned position embeddings, ``depth`` pre-norm blocks,
    final LayerNorm, linear head on the class token.

    ``attn_layer`` (a callable ``(dim, num_heads=, qkv_bias=) -> nn.Module``) swaps the attention of every
    block (KVT uses it for k-NN attention).

    Example:
        >>> model = VisionTransformer(img_size=32, patch_size=8, embed_dim=16, depth=2, num_heads=2, num_classes=5)
        >>> model(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 5])
        >>> model.forward_features(torch.randn(2, 3, 32, 32)).shape  # class token + 4 x 4 patches
        torch.Size([2, 17, 16])
    """

    default_input_size = 224

    def __init__(
        self,
        img_size: int = 224,
        patch_size: int = 16,
        in_chans: int = 3,
        num_classes: int = 1000,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path_rate: float = 0.0,
        attn_layer: Optional[Callable[..., nn.Module]] = None,
    ) -> None:
        super().__init__()
        self.in_chans = in_chans
        for name, value in (("img_size", img_size), ("patch_size", patch_size), ("in_chans", in_chans),
                            ("depth", depth)):
            check_int(name, value)
        check_int("num_classes", num_classes, minimum=0)
        check_heads(embed_dim, num_heads)
        check_rate("drop_path_rate", drop_path_rate)
        if img_size % patch_size:
            raise ValueError(f"patch_size must divide img_size={img_size}, got patch_size={patch_size}")
        self.num_classes = num_classes
        self.num_features = self.embed_dim = embed_dim
        self.default_input_size = img_size
        self.grid = (img_size // patch_size, img_size // patch_size)

        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.grid[0] * self.grid[1], embed_dim))
        # stochastic depth grows linearly from 0 (first block) to drop_path_rate (last)
        rates = linear_drop_path_rates(drop_path_rate, depth)
        self.blocks = nn.Sequential(*[
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias, rates[i], attn_layer) for i in range(depth)
        ])
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()

        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        init_trunc_normal_(self)  # truncated normal (std 0.02) linears, zero bias

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_chans, H, W) -> normalised tokens (B, 1 + H/P * W/P, C), class token first."""
        x = self.patch_embed(x)  # (B, C, h, w)
        pos_embed = resize_pos_embed(self.pos_embed, self.grid, x.shape[2], x.shape[3])
        x = rearrange(x, "b c h w -> b (h w) c")
        cls_token = self.cls_token.expand(x.shape[0], -1, -1)  # (B, 1, C)
        x = torch.cat([cls_token, x], dim=1) + pos_embed  # (B, 1 + h*w, C)
        x = self.blocks(x)
        return self.norm(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.forward_features(x)
        return self.head(x[:, 0])  # the class token (first) -> (B, num_classes)


_PAPER = ("Dosovitskiy, Beyer, Kolesnikov, Weissenborn, Zhai, Unterthiner, Dehghani, Minderer, Heigold, Gelly, "
          "Uszkoreit, Houlsby: An Image is Worth 16x16 Words: Transformers for Image Recognition at Scale")
_register = partial(register_backbone, family="vit", paper=_PAPER, venue="ICLR", year=2021)


@_register("vit_tiny_patch16_224", params=5_717_416)
def vit_tiny_patch16_224(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> VisionTransformer:
    """ViT-Ti/16: D=192, 12 blocks, 3 heads (timm: 5,717,416 parameters).

    Example:
        >>> vit_tiny_patch16_224(num_classes=10).head.out_features
        10
    """
    return VisionTransformer(num_classes=num_classes, in_chans=in_chans, embed_dim=192, depth=12, num_heads=3,
                             **kwargs)


@_register("vit_small_patch16_224", params=22_050_664)
def vit_small_patch16_224(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> VisionTransformer:
    """ViT-S/16: D=384, 12 blocks, 6 heads (timm: 22,050,664 parameters).

    Example:
        >>> vit_small_patch16_224().embed_dim
        384
    """
    return VisionTransformer(num_classes=num_classes, in_chans=in_chans, embed_dim=384, depth=12, num_heads=6,
                             **kwargs)


@_register("vit_base_patch16_224", params=86_567_656)
def vit_base_patch16_224(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> VisionTransformer:
    """ViT-B/16 (paper Table 1): D=768, 12 blocks, 12 heads (timm: 86,567,656 parameters).

    Example:
        >>> len(vit_base_patch16_224().blocks)
        12
    """
    return VisionTransformer(num_classes=num_classes, in_chans=in_chans, embed_dim=768, depth=12, num_heads=12,
                             **kwargs)
