"""GFNet-Ti and GFNet-XS (Global Filter Networks).

Paper: Yongming Rao, Wenliang Zhao, Zheng Zhu, Jiwen Lu, Jie Zhou, "Global Filter Networks for Image
Classification", NeurIPS 2021. Section 3.2, Eq. (4)-(6), and the official code (raoyongming/GFNet,
``gfnet.py`` / ``main_gfnet.py``):

* X = F[x]        -- 2D FFT over the h x w patch grid, per channel (``torch.fft.rfft2``, "ortho"
  normalisation; real input, so only w/2 + 1 frequency columns are kept);
* X~ = K * X      -- element-wise product with a learnable complex global filter K (h, w/2 + 1, D);
* x <- F^-1[X~]   -- inverse FFT (``torch.fft.irfft2``).
  The filter equals a circular depthwise convolution with a kernel as large as the feature map
  (Section 3.3), which the tests check.
* Block (official code): ``x + MLP(LN(GlobalFilter(LN(x))))`` -- ONE residual around the filter and the
  FFN (Fig. 2), MLP = Linear(D, 4D) -> GELU -> Linear(4D, D).
* Model: 16 x 16 patch embedding, learnable position embedding (no class token), 12 blocks, LayerNorm,
  mean over tokens, linear head. GFNet-Ti D = 256, GFNet-XS D = 384 (``main_gfnet.py``).

Fixed input size: K has the shape of the patch grid's spectrum (14 x 8 at 224), and the position
embedding one entry per patch, so a model is defined only for the ``img_size`` it was built for (the
official ``PatchEmbed`` asserts the same; at a new resolution the paper fine-tunes with filters and
position embeddings interpolated once, offline). Other sizes raise a ``ValueError`` naming the size
given and the size expected (the shared input check of every backbone, kept in traced graphs).

Stochastic depth: 0 for GFNet-Ti and GFNet-XS, their training configuration (the official
``main_gfnet.py`` builds ``gfnet-ti`` / ``gfnet-xs`` without ``drop_path_rate``, so the ``GFNet`` default 0
applies; only ``gfnet-s`` / ``gfnet-b`` set 0.15 / 0.25).

Parameter names are the official code's (``patch_embed.proj``, ``pos_embed``, ``blocks.i.norm1``,
``filter.complex_weight`` stored as (h, w/2+1, D, 2) real/imaginary pairs, ``mlp.fc1``, ``norm``,
``head``), so official checkpoints load by name. Init as the official code: K ~ N(0, 0.02^2), truncated
normal (std 0.02) Linear weights and position embedding, zero biases.

Reference parameter counts (1000 classes): the paper / official README give GFNet-Ti 7M and GFNet-XS
16M (rounded). timm has no GFNet, so the exact counts of the official architecture were derived from the
official module shapes (patch conv 3*256*D + D, pos_embed 196*D, per block 4D LN + 14*8*D*2 filter +
8D^2 + 5D MLP, final LN 2D, head 1000D + 1000) and match ours: GFNet-Ti 7,511,784, GFNet-XS 15,985,768.

Injection sites: :class:`~plugattn.backbones.layers.PatchEmbed` gives the only (B, C, H, W) map
(``inject_attention(model, "eca", after="PatchEmbed")``); :class:`GFNetBlock` maps tokens to tokens,
so the injector refuses it with its "(B, C, H, W) feature map" error.
"""
from __future__ import annotations

from functools import partial
from typing import Any

import torch
import torch.fx
import torch.nn as nn
from einops import rearrange

from ..layers import DropPath, Mlp, PatchEmbed, PatchTokenModel, init_trunc_normal_, linear_drop_path_rates
from ..registry import register_backbone

# recorded as single calls by torch.fx: einops cannot see proxies, and the size check must run at run time
torch.fx.wrap("rearrange")

__all__ = ["GlobalFilter", "GFNetBlock", "GFNet", "gfnet_ti", "gfnet_xs"]


class GlobalFilter(nn.Module):
    """Global filter layer (Eq. (4)-(6)): ``irfft2(K * rfft2(x))`` over an ``height`` x ``width`` grid.
    Tokens (B, height*width, D) -> (B, height*width, D), computed in float32 as the official code.

    Example:
        >>> GlobalFilter(8, height=4, width=6)(torch.randn(2, 24, 8)).shape
        torch.Size([2, 24, 8])
    """

    def __init__(self, dim: int, height: int, width: int) -> None:
        super().__init__()
        self.height, self.width = height, width
        # K as (real, imaginary) pairs: the spectrum of a real h x w signal has w // 2 + 1 columns
        self.complex_weight = nn.Parameter(torch.randn(height, width // 2 + 1, dim, 2) * 0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        grid = rearrange(x, "b (h w) d -> b h w d", h=self.height).float()
        spectrum = torch.fft.rfft2(grid, dim=(1, 2), norm="ortho")  # (B, h, w//2+1, D) complex
        spectrum = spectrum * torch.view_as_complex(self.complex_weight)
        grid = torch.fft.irfft2(spectrum, s=(self.height, self.width), dim=(1, 2), norm="ortho")
        return rearrange(grid, "b h w d -> b (h w) d").to(dtype)


class GFNetBlock(nn.Module):
    """GFNet block: ``x + MLP(LN(GlobalFilter(LN(x))))`` (official ``Block``). Tokens in, tokens out.

    Example:
        >>> GFNetBlock(8, height=4, width=4)(torch.randn(2, 16, 8)).shape
        torch.Size([2, 16, 8])
    """

    def __init__(self, dim: int, height: int, width: int, mlp_ratio: float = 4.0, drop_path: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.filter = GlobalFilter(dim, height, width)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop_path(self.mlp(self.norm2(self.filter(self.norm1(x)))))


class GFNet(PatchTokenModel):
    """GFNet: patch embedding + position embedding, ``depth`` :class:`GFNetBlock`, LayerNorm, mean over
    tokens, linear head. Defined for ``img_size`` x ``img_size`` inputs only.

    Example:
        >>> model = GFNet(img_size=32, patch_size=8, embed_dim=16, depth=2, num_classes=5)
        >>> model(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 5])
        >>> model.forward_features(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 16, 16])
    """

    def __init__(
        self,
        img_size: int = 224,
        patch_size: int = 16,
        in_chans: int = 3,
        num_classes: int = 1000,
        embed_dim: int = 384,
        depth: int = 12,
        mlp_ratio: float = 4.0,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        grid = self.setup_grid(img_size, patch_size, in_chans, embed_dim, depth, num_classes, drop_path_rate)
        if not mlp_ratio > 0:
            raise ValueError(f"mlp_ratio must be > 0, got {mlp_ratio!r}")

        self.patch_embed = PatchEmbed(in_chans, embed_dim, patch_size)
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid, embed_dim))
        # stochastic depth grows linearly from 0 (first block) to drop_path_rate (last), as the official code
        rates = linear_drop_path_rates(drop_path_rate, depth)
        self.blocks = nn.Sequential(*[GFNetBlock(embed_dim, grid, grid, mlp_ratio, rates[i]) for i in range(depth)])
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()

        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        init_trunc_normal_(self)  # official init: truncated normal (std 0.02) linears, zero bias

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_chans, img_size, img_size) -> normalised patch tokens (B, h*w, D)."""
        x = rearrange(self.patch_embed(x), "b c h w -> b (h w) c") + self.pos_embed  # (B, N, D)
        return self.norm(self.blocks(x))


_PAPER = "Rao, Zhao, Zhu, Lu, Zhou: Global Filter Networks for Image Classification"
_register = partial(register_backbone, family="mlp", paper=_PAPER, venue="NeurIPS", year=2021)


@_register("gfnet_ti", params=7_511_784)
def gfnet_ti(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> GFNet:
    """GFNet-Ti: D=256, 12 blocks, 16 x 16 patches, 224 x 224 only (7,511,784 parameters; paper: 7M).

    Example:
        >>> gfnet_ti().blocks[0].filter.complex_weight.shape
        torch.Size([14, 8, 256, 2])
    """
    return GFNet(num_classes=num_classes, in_chans=in_chans, patch_size=16, embed_dim=256, depth=12, **kwargs)


@_register("gfnet_xs", params=15_985_768)
def gfnet_xs(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> GFNet:
    """GFNet-XS: D=384, 12 blocks, 16 x 16 patches, 224 x 224 only (15,985,768 parameters; paper: 16M).

    Example:
        >>> gfnet_xs().embed_dim
        384
    """
    return GFNet(num_classes=num_classes, in_chans=in_chans, patch_size=16, embed_dim=384, depth=12, **kwargs)
