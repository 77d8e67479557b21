"""DynaMixer-S.

Paper: Ziyu Wang, Wenhao Jiang, Yiming Zhu, Li Yuan, Yibing Song, Wei Liu, "DynaMixer: A Vision MLP
Architecture with Dynamic Mixing", ICML 2022 (PMLR 162). Section 3, layout as the official code
(github.com/ziyuwwang/DynaMixer, ``models/dynamixer.py``, ``models/configs/conf_dynamixer.py``,
``dynamixer_s``):

* DynaMixer operation (Sec. 3.2, Eq. (2)-(5)) on a sequence X (N tokens, C channels), per head
  (the C channels split into ``num_heads`` groups): compress every token to d = 2 values
  (``compress``: Linear C -> heads * d), concatenate the N compressed tokens of a head
  (N * d values) and generate an N x N mixing matrix from them (``generate``: Linear N*d -> N*N),
  softmax over the input tokens, mix the head's tokens with it (``Y = P^T X``), concatenate the heads,
  then an output Linear (``out``);
* DynaMixer block (Sec. 3.3): row mixing (the operation along W, every row), column mixing (along H,
  every column) and a channel Linear, fused by ViP's split attention
  (:func:`plugattn.backbones.layers.reweight_branches`) and a Linear; the block is
  ``x + mixing(LN(x))`` then ``x + MLP(LN(x))`` (MLP ratio 3);
* DynaMixer-S: the ViP-Small/7 skeleton -- a 7x7 stride-7 patch embedding, layers (4, 3, 8, 3),
  widths (192, 384, 384, 384), a 2x2 stride-2 downsampling after stage 1 -- with 8 heads in stage 1
  and 16 afterwards, d = 2, sequence lengths 32 (stage 1) and 16.

Fixed input size: ``generate`` maps N*d values to an N x N matrix, so the model is defined for the
``img_size`` it was built for only -- 224 by default (sequences of 32 and 16 tokens). Other input sizes
raise a ``ValueError`` naming both sizes (a ``torch.fx.wrap``-ed check, skipped for FX proxies while
tracing). ``img_size`` builds the model for another size (the ``generate`` layers, and so the parameter
count, follow the grid).

Stochastic depth 0.1 (the official README's training command for ``dynamixer_s``). Init as the official
code: truncated-normal (std 0.02) Linear weights, zero biases, unit/zero LayerNorm. Parameter names are
the official ones (``network.i.j.attn.mix_h.generate``, ``reweight``, ``mlp_c``, ...); blocks take and
return (B, C, H, W) maps, so every :class:`DynaMixerBlock` is an injection site, while
:class:`DynaMixerOp` maps token sequences (B * W, H, C) and is refused by the injector.

Reference parameter count (1000 classes): the paper's abstract and the official README give
DynaMixer-S as "26M", rounded to 1M. The exact count of the official ``dynamixer_s`` configuration, computed
from its layer shapes (arithmetic written out in the test), is 26,265,960 -- the registered reference; this
implementation measures the same 26,265,960 (1.0% above the rounded 26M, which it rounds to).
"""
from __future__ import annotations

from functools import partial
from typing import Any, Sequence

import torch
import torch.fx
import torch.nn as nn
from einops import rearrange

from ..._validate import check_int
from ..layers import Mlp, PermutatorBlock, reweight_branches
from ..registry import register_backbone
from .vip import VisionPermutator

torch.fx.wrap("rearrange")  # einops cannot see FX proxies: one call node, run on real tensors

__all__ = ["DynaMixerOp", "DynaMixerTokenMixing", "DynaMixerBlock", "DynaMixer", "dynamixer_s"]


class DynaMixerOp(nn.Module):
    """The DynaMixer operation (Eq. (2)-(5)): token mixing with a matrix generated from the tokens
    themselves, per head. (N, L, C) -> (N, L, C) for sequences of exactly ``seq_len`` tokens.

    Example:
        >>> DynaMixerOp(dim=16, seq_len=5, num_heads=4)(torch.randn(3, 5, 16)).shape
        torch.Size([3, 5, 16])
    """

    def __init__(self, dim: int, seq_len: int, num_heads: int, reduced_dim: int = 2) -> None:
        super().__init__()
        for name, value in (("dim", dim), ("seq_len", seq_len), ("num_heads", num_heads),
                            ("reduced_dim", reduced_dim)):
            check_int(name, value)
        if dim % num_heads:
            raise ValueError(f"num_heads must divide dim={dim}, got num_heads={num_heads}")
        self.seq_len = seq_len
        self.num_heads = num_heads
        self.reduced_dim = reduced_dim
        self.out = nn.Linear(dim, dim)
        self.compress = nn.Linear(dim, num_heads * reduced_dim)
        self.generate = nn.Linear(seq_len * reduced_dim, seq_len * seq_len)

    def mixing_matrices(self, x: torch.Tensor) -> torch.Tensor:
        """(N, L, C) -> P (N, heads, L_in, L_out), each column a softmax over the input tokens."""
        compressed = rearrange(self.compress(x), "n l (h d) -> n h (l d)", h=self.num_heads)
        logits = rearrange(self.generate(compressed), "n h (i o) -> n h i o", i=self.seq_len)
        return logits.softmax(dim=-2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mixing = self.mixing_matrices(x)
        heads = rearrange(x, "n l (h c) -> n h c l", h=self.num_heads)  # (N, heads, C/heads, L)
        mixed = torch.matmul(heads, mixing)  # token o of a head = sum_i P[i, o] * token i
        return self.out(rearrange(mixed, "n h c l -> n l (h c)"))


class DynaMixerTokenMixing(nn.Module):
    """Row mixing, column mixing and a channel Linear, fused by split attention, then a Linear
    (the official ``DynaMixerBlock``). (B, H, W, C) -> (B, H, W, C) with H == W == ``resolution``.

    Example:
        >>> DynaMixerTokenMixing(16, resolution=4, num_heads=2)(torch.randn(2, 4, 4, 16)).shape
        torch.Size([2, 4, 4, 16])
    """

    def __init__(self, dim: int, resolution: int, num_heads: int, reduced_dim: int = 2,
                 qkv_bias: bool = False) -> None:
        super().__init__()
        self.resolution = resolution
        self.mix_h = DynaMixerOp(dim, resolution, num_heads, reduced_dim)
        self.mix_w = DynaMixerOp(dim, resolution, num_heads, reduced_dim)
        self.mlp_c = nn.Linear(dim, dim, bias=qkv_bias)
        self.reweight = Mlp(dim, dim // 4, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.resolution
        # column mixing: every column is a sequence of H tokens
        x_h = self.mix_h(rearrange(x, "b h w c -> (b w) h c"))
        x_h = rearrange(x_h, "(b w) h c -> b h w c", w=r)
        # row mixing: every row is a sequence of W tokens
        x_w = self.mix_w(rearrange(x, "b h w c -> (b h) w c"))
        x_w = rearrange(x_w, "(b h) w c -> b h w c", h=r)
        x_c = self.mlp_c(x)
        return self.proj(reweight_branches(x_h, x_w, x_c, self.reweight))


class DynaMixerBlock(PermutatorBlock):
    """DynaMixer block (the official ``VisionBlock``): ``x + mixing(LN(x))`` then ``x + MLP(LN(x))``.
    (B, C, H, W) -> (B, C, H, W).

    Example:
        >>> DynaMixerBlock(16, resolution=4, num_heads=2)(torch.randn(2, 16, 4, 4)).shape
        torch.Size([2, 16, 4, 4])
    """

    def __init__(self, dim: int, resolution: int, num_heads: int, reduced_dim: int = 2, mlp_ratio: float = 3.0,
                 drop_path: float = 0.0, qkv_bias: bool = False) -> None:
        mixer = DynaMixerTokenMixing(dim, resolution, num_heads, reduced_dim, qkv_bias)
        super().__init__(dim, mixer, mlp_ratio, drop_path)


class DynaMixer(VisionPermutator):
    """DynaMixer network: the ViP skeleton (:class:`VisionPermutator`) with :class:`DynaMixerBlock` blocks.

    Example:
        >>> model = DynaMixer(layers=(1, 1), embed_dims=(16, 32), transitions=(True, False), mlp_ratios=(3, 3),
        ...                   num_heads=(2, 4), reduced_dims=(2, 2), img_size=56, num_classes=5)
        >>> model(torch.randn(2, 3, 56, 56)).shape
        torch.Size([2, 5])
    """

    def __init__(self, layers: Sequence[int] = (4, 3, 8, 3), embed_dims: Sequence[int] = (192, 384, 384, 384),
                 transitions: Sequence[bool] = (True, False, False, False), mlp_ratios: Sequence[float] = (3, 3, 3, 3),
                 num_heads: Sequence[int] = (8, 16, 16, 16), reduced_dims: Sequence[int] = (2, 2, 2, 2),
                 **kwargs: Any) -> None:
        if not len(num_heads) == len(reduced_dims) == len(layers):
            raise ValueError(
                f"num_heads and reduced_dims need one entry per stage ({len(layers)}), got "
                f"{list(num_heads)!r} and {list(reduced_dims)!r}"
            )
        self.num_heads = tuple(num_heads)
        self.reduced_dims = tuple(reduced_dims)
        super().__init__(layers, embed_dims, transitions, mlp_ratios, **kwargs)

    def make_block(self, stage: int, dim: int, mlp_ratio: float, drop_path: float) -> nn.Module:
        return DynaMixerBlock(dim, self.grids[stage], self.num_heads[stage], self.reduced_dims[stage],
                              mlp_ratio, drop_path, self.qkv_bias)


_PAPER = "Wang, Jiang, Zhu, Yuan, Song, Liu: DynaMixer: A Vision MLP Architecture with Dynamic Mixing"
_register = partial(register_backbone, family="mlp", paper=_PAPER, venue="ICML", year=2022)


@_register("dynamixer_s", params=26_265_960)
def dynamixer_s(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> DynaMixer:
    """DynaMixer-S: layers (4, 3, 8, 3), widths (192, 384, 384, 384), heads (8, 16, 16, 16), d = 2, MLP ratio 3,
    stochastic depth 0.1; 224 x 224 inputs (paper: 26M parameters; measured 26,265,960).

    Example:
        >>> dynamixer_s().network[0][0].attn.mix_h.generate.weight.shape  # (32*32, 32*2)
        torch.Size([1024, 64])
    """
    kwargs.setdefault("drop_path_rate", 0.1)
    return DynaMixer(num_classes=num_classes, in_chans=in_chans, patch_size=7, **kwargs)
