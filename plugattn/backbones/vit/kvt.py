"""KVT: DeiT-S with k-NN (top-k) attention.

Paper: Pichao Wang, Xue Wang, Fan Wang, Ming Lin, Shuning Chang, Hao Li, Rong Jin, "KVT: k-NN Attention
for Boosting Vision Transformers", ECCV 2022. Section 3.1, Eq. (2): for every query only the k keys
with the largest scores q_i k_j^T / sqrt(d) take part in the softmax,

    Attn_knn(Q, K, V) = softmax(T_k(Q K^T / sqrt(d))) V,
    [T_k(A)]_ij = A_ij if A_ij is among the top-k of row i, -inf otherwise,

implemented as the paper's Algorithm 1 (``topk`` indices scattered into a mask, ``torch.where`` to -inf).
The rest is DeiT-S (Touvron et al., ICML 2021): ViT with D=384, 12 blocks, 6 heads, class token first,
final LayerNorm (see :mod:`plugattn.backbones.vit.vit`). The default k=100 is Algorithm 1's ``topk=100``
(for DeiT's 197 tokens; the paper sweeps k in Section 4).

Why not ``F.scaled_dot_product_attention``: the top-k selection needs the explicit N x N score matrix
(SDPA never exposes it, and a boolean mask built from the scores would need them anyway), so
:class:`KNNAttention` computes scores, mask and softmax directly. With k >= N the mask keeps every key and
the result equals plain attention (tested). k larger than the token count (small inputs) is clipped to
N at run time, inside an ``torch.fx.wrap``-ed function so the model stays traceable.

Parameter count: k-NN attention adds no parameters, so KVT-DeiT-S has DeiT-S's 22,050,664 (timm's
``deit_small_patch16_224``, re-measured by building it here; DeiT's paper rounds it to 22M). The
architecture (and every parameter name) is timm's DeiT-S: its state_dict loads unchanged, and with
k = all tokens the outputs equal timm's.

Injection sites: as ViT, only :class:`~plugattn.backbones.layers.PatchEmbed` produces a (B, C, H, W) map;
blocks produce tokens.
"""
from __future__ import annotations

from functools import partial
from typing import Any

import torch
import torch.fx
import torch.nn as nn
from einops import rearrange

from ..._validate import check_int
from ..layers import Attention
from ..registry import register_backbone
from .vit import VisionTransformer

# einops cannot see torch.fx proxies: record rearrange as one opaque call so the models stay traceable
torch.fx.wrap("rearrange")

__all__ = ["KNNAttention", "knn_mask_scores", "kvt_deit_small_patch16_224"]


def knn_mask_scores(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` largest scores of every row (last dim), set the rest to -inf (KVT Algorithm 1).
    ``k`` is clipped to the row length.

    Example:
        >>> knn_mask_scores(torch.tensor([[1.0, 3.0, 2.0]]), 2)
        tensor([[-inf, 3., 2.]])
    """
    k = min(k, scores.shape[-1])
    index = torch.topk(scores, k=k, dim=-1, largest=True).indices  # (..., N, k)
    keep = torch.zeros_like(scores, dtype=torch.bool).scatter_(-1, index, True)
    return torch.where(keep, scores, torch.full_like(scores, float("-inf")))


torch.fx.wrap("knn_mask_scores")


class KNNAttention(Attention):
    """Multi-head attention where each query attends to its ``topk`` highest-scoring keys only.
    Same parameters (``qkv``, ``proj``) as :class:`~plugattn.backbones.layers.Attention`.

    Example:
        >>> KNNAttention(16, num_heads=2, topk=3)(torch.randn(2, 5, 16)).shape
        torch.Size([2, 5, 16])
    """

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = True, topk: int = 100) -> None:
        super().__init__(dim, num_heads=num_heads, qkv_bias=qkv_bias)
        self.topk = check_int("topk", topk)
        self.scale = self.head_dim ** -0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.split_heads(x)  # each (B, heads, N, d)
        scores = (q @ k.transpose(-2, -1)) * self.scale  # (B, heads, N, N)
        attn = knn_mask_scores(scores, self.topk).softmax(dim=-1)
        x = attn @ v  # (B, heads, N, d)
        return self.proj(rearrange(x, "b h n d -> b n (h d)"))

    def extra_repr(self) -> str:
        return f"topk={self.topk}"


_PAPER = "Wang, Wang, Wang, Lin, Chang, Li, Jin: KVT: k-NN Attention for Boosting Vision Transformers"


@register_backbone("kvt_deit_small_patch16_224", family="vit", aliases=("kvt_deit_small", "kvt"), paper=_PAPER,
                   venue="ECCV", year=2022, params=22_050_664)
def kvt_deit_small_patch16_224(num_classes: int = 1000, in_chans: int = 3, topk: int = 100,
                               drop_path_rate: float = 0.1, **kwargs: Any) -> VisionTransformer:
    """DeiT-S (D=384, 12 blocks, 6 heads) whose every attention keeps the ``topk`` nearest keys per query.
    ``drop_path_rate`` 0.1: the official KVT main.py's ``--drop-path`` default, which its training command keeps.

    Example:
        >>> model = kvt_deit_small_patch16_224(topk=50)
        >>> model.blocks[0].attn.topk
        50
    """
    check_int("topk", topk)
    return VisionTransformer(num_classes=num_classes, in_chans=in_chans, embed_dim=384, depth=12, num_heads=6,
                             attn_layer=partial(KNNAttention, topk=topk), drop_path_rate=drop_path_rate, **kwargs)
