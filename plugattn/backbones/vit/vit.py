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

Injection sites: the only module producing a (B, C, H, W) map is :class:`~plugattn.backbones.layers.PatchEmbed`
(the patch projection, before flattening into tokens), e.g. ``inject_attention(model, "eca", after="PatchEmbed")``.
Every :class:`~plugattn.backbones.layers.Block` maps tokens (B, N, C) to tokens, so the injector refuses
it with its "(B, C, H, W) feature map" error.
"""
from __future__ import annotations

from functools import partial
from typing import Any, Callable, Optional

import torch
import torch.fx
import torch.nn as nn
from einops import rearrange

from ..layers import (
    Block, ImageBackbone, PatchEmbed, check_heads, check_patch_grid_args, init_trunc_normal_, linear_drop_path_rates,
    resize_pos_embed,
)
from ..registry import register_backbone

# einops cannot see torch.fx proxies: record rearrange as one opaque call so the models stay traceable
torch.fx.wrap("rearrange")
torch.fx.wrap("resize_pos_embed")  # imported from layers: the wrap patches this module's name

__all__ = [
    "VisionTransformer",
    "vit_tiny_patch16_224",
    "vit_small_patch16_224",
    "vit_base_patch16_224",
]


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
        grid = check_patch_grid_args(img_size, patch_size, in_chans, depth, num_classes, drop_path_rate)
        check_heads(embed_dim, num_heads)
        self.num_classes = num_classes
        self.num_features = self.embed_dim = embed_dim
        self.default_input_size = img_size
        self.grid = (grid, grid)

        self.patch_embed = PatchEmbed(in_chans, embed_dim, patch_size)
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
