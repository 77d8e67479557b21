"""BViT-S (DeiT-S with broad attention).

Paper: Nannan Li, Yaran Chen, Weifan Li, Zixiang Ding, Dongbin Zhao, Shuai Nie, "BViT: Broad Attention
based Vision Transformer", IEEE Transactions on Neural Networks and Learning Systems (TNNLS) 2023
(arXiv 2202.06268). Broad attention = broad connection + parameter-free attention (Sec. III):

* the backbone is a plain ViT / DeiT; BViT-S is DeiT-S (D = 384, 12 layers, 6 heads, patch 16, class
  token first, pre-norm blocks, GELU between the MLP's two layers only);
* broad connection: the queries, keys and values of every layer l = 1..L (Q_l, K_l, V_l, per head,
  (B, heads, N, d)) are carried to the end of the network and concatenated per head along the feature
  axis: Q_b = [Q_1, ..., Q_L], K_b, V_b of width L*d;
* parameter-free attention: ``A_b = softmax(Q_b K_b^T / sqrt(d)) V_b`` (no new weights; the scale is
  the per-layer head size d, as in the official code), heads merged to (B, N, heads*L*d) and average-
  pooled over the feature axis down to D (``adaptive_avg_pool1d``);
* output: ``z = z_L + alpha * A_b`` with alpha = 0.4 (the official code's weight), then the final
  LayerNorm and the linear head on the class token.

Equations and constants were taken from the official implementation (github.com/koala719/BViT,
``model/layer/bvit.py``, read through the code-search tool; the paper text itself was not reachable
here). Deviations from that file, which is a vit-pytorch derivative: it puts an extra 7x7 stride-2 3->3
conv before the patch embedding and hard-codes the pooled width to 192 (DeiT-Ti) -- we follow the paper's
description (BViT built on DeiT-S, no extra stem) and pool to D. Attention, per layer and broad, uses
``F.scaled_dot_product_attention`` (the broad attention needs Q, K, V of every layer, not the attention
maps, so SDPA applies; the broad one passes ``scale=d**-0.5`` explicitly since its width is L*d).

Attention projections follow the official file too: ``to_qkv`` has no bias (``bias=False``), so
BViT-S has 22,036,840 parameters -- DeiT-S's 22,050,664 less the 12 x 1,152 qkv biases (the paper reports
22M; broad attention adds no parameters). Parameter names are timm's, so timm's ViT-S / DeiT-S built with
``qkv_bias=False`` loads as is; ``bvit_small(qkv_bias=True)`` is exactly DeiT-S plus broad attention and
loads timm's ``deit_small_patch16_224`` weights (with ``broad_weight=0`` it is then exactly timm's model,
tested). Documented deviations from the official file: no extra 7x7 stem conv and pooling to D (above),
and LayerNorm eps 1e-6 (timm's DeiT) where the official file keeps PyTorch's 1e-5.

Input size: 224 default; other sizes divisible by 16 resize the position embeddings (as ViT; tested at 64).

Injection sites: only :class:`plugattn.backbones.layers.PatchEmbed` produces a (B, C, H, W) map
(``inject_attention(model, "eca", after="PatchEmbed")``); :class:`BViTBlock` and
:class:`BroadAttention` produce tokens and are refused with the injector's "(B, C, H, W) feature map"
error.
"""
from __future__ import annotations

from typing import Any, List, Tuple

import torch
import torch.fx
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from ..layers import Block, check_rate, init_trunc_normal_, linear_drop_path_rates, resize_pos_embed
from ..registry import register_backbone
from .vit import VisionTransformer

__all__ = ["BViTBlock", "BroadAttention", "BViT", "bvit_small"]

torch.fx.wrap("rearrange")
torch.fx.wrap("resize_pos_embed")  # imported from vit: wrap the name here too


class BViTBlock(Block):
    """The ViT block (timm names) that also returns its attention's q, k, v (each (B, heads, N, d)) for
    the broad connection. (B, N, C) -> ((B, N, C), q, k, v).

    Example:
        >>> x, q, k, v = BViTBlock(16, num_heads=2)(torch.randn(2, 5, 16))
        >>> x.shape, q.shape
        (torch.Size([2, 5, 16]), torch.Size([2, 2, 5, 8]))
    """

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        q, k, v = self.attn.split_heads(self.norm1(x))
        attended = rearrange(F.scaled_dot_product_attention(q, k, v), "b h n d -> b n (h d)")
        x = x + self.drop_path(self.attn.proj(attended))
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x, q, k, v


class BroadAttention(nn.Module):
    """Parameter-free broad attention: softmax(Q_b K_b^T / sqrt(d)) V_b over the per-head concatenation
    of every layer's q, k, v, heads merged and average-pooled to ``dim`` features. Lists of L tensors
    (B, heads, N, d) -> (B, N, dim).

    Example:
        >>> qs = [torch.randn(1, 2, 5, 8) for _ in range(3)]
        >>> BroadAttention(16)(qs, qs, qs).shape
        torch.Size([1, 5, 16])
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, qs: List[torch.Tensor], ks: List[torch.Tensor], vs: List[torch.Tensor]) -> torch.Tensor:
        head_dim = qs[0].shape[-1]
        q, k, v = torch.cat(qs, dim=-1), torch.cat(ks, dim=-1), torch.cat(vs, dim=-1)  # (B, heads, N, L*d)
        out = F.scaled_dot_product_attention(q, k, v, scale=head_dim ** -0.5)
        out = rearrange(out, "b h n d -> b n (h d)")  # (B, N, heads * L * d)
        return F.adaptive_avg_pool1d(out, self.dim)  # (B, N, dim)


class BViT(VisionTransformer):
    """BViT: a ViT whose final tokens get ``broad_weight`` x the broad attention of all layers' q, k, v.

    Example:
        >>> model = BViT(img_size=32, patch_size=8, embed_dim=16, depth=2, num_heads=2, num_classes=5)
        >>> model(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 5])
    """

    def __init__(self, broad_weight: float = 0.4, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(broad_weight, bool) or not isinstance(broad_weight, (int, float)) or broad_weight < 0:
            raise ValueError(f"broad_weight must be a number >= 0, got {broad_weight!r}")
        self.broad_weight = float(broad_weight)
        depth = len(self.blocks)
        first = self.blocks[0]
        num_heads, mlp_ratio = first.attn.num_heads, first.mlp.fc1.out_features / self.embed_dim
        qkv_bias = first.attn.qkv.bias is not None
        drop_path_rate = check_rate("drop_path_rate", kwargs.get("drop_path_rate", 0.0))
        rates = linear_drop_path_rates(drop_path_rate, depth)
        self.blocks = nn.ModuleList([
            BViTBlock(self.embed_dim, num_heads, mlp_ratio, qkv_bias, rates[i]) for i in range(depth)
        ])
        init_trunc_normal_(self.blocks)  # ViT init (std 0.02, zero bias) for the rebuilt blocks
        self.broad_attention = BroadAttention(self.embed_dim)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_chans, H, W) -> normalised tokens (B, 1 + H/P * W/P, C), class token first."""
        x = self.patch_embed(x)  # (B, C, h, w)
        pos_embed = resize_pos_embed(self.pos_embed, self.grid, x.shape[2], x.shape[3])
        x = rearrange(x, "b c h w -> b (h w) c")
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + pos_embed
        qs, ks, vs = [], [], []
        for block in self.blocks:
            x, q, k, v = block(x)
            qs.append(q)
            ks.append(k)
            vs.append(v)
        x = x + self.broad_weight * self.broad_attention(qs, ks, vs)
        return self.norm(x)


@register_backbone(
    "bvit_small",
    family="vit",
    paper="Li, Chen, Li, Ding, Zhao, Nie: BViT: Broad Attention based Vision Transformer",
    venue="IEEE TNNLS",
    year=2023,
    params=22_036_840,
)
def bvit_small(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> BViT:
    """BViT-S: DeiT-S (D = 384, 12 layers, 6 heads) without qkv bias, as the official code, + broad attention
    (22,036,840 parameters, paper: 22M).

    Example:
        >>> bvit_small(num_classes=0)(torch.randn(1, 3, 64, 64)).shape
        torch.Size([1, 384])
    """
    kwargs.setdefault("qkv_bias", False)  # the official Attention: nn.Linear(dim, 3 * inner_dim, bias=False)
    return BViT(num_classes=num_classes, in_chans=in_chans, embed_dim=384, depth=12, num_heads=6, **kwargs)
