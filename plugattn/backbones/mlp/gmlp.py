"""gMLP-S (gMLP for image classification).

Paper: Hanxiao Liu, Zihang Dai, David R. So, Quoc V. Le, "Pay Attention to MLPs", NeurIPS 2021.
Section 2, Eq. (1)-(3) and Fig. 1:

* Z = sigma(X U)  -- channel projection d_model -> d_ffn with GELU;
* Z~ = s(Z)       -- the Spatial Gating Unit: split Z into (Z_1, Z_2) along channels,
  s(Z) = Z_1 * f_{W,b}(Z_2) with f_{W,b}(Z_2) = W LayerNorm(Z_2) + b, W an n x n matrix across the
  n tokens (Eq. (2)-(3), normalising Z_2 as the paper's pseudo-code); W is initialised near zero and b
  to ones so each block starts close to a plain FFN (Section 2.1);
* Y = Z~ V        -- channel projection d_ffn/2 -> d_model; the block is Y + X with a pre-LayerNorm.
* Model (Section 3, Table 1 "gMLP-S"): 16 x 16 patches, L = 30 blocks, d_model = 256, d_ffn = 1536;
  LayerNorm, mean over tokens, linear head.

Fixed input size: W is n x n with n = (img_size / 16)^2 = 196 at 224, so a model is defined only for
the ``img_size`` it was built for. Other sizes raise a ``ValueError`` naming the size given and the
size expected (one ``torch.fx.wrap``-ed call, kept in traced graphs).

Parameter names are timm's (``stem.proj``, ``blocks.i.norm``, ``mlp_channels.fc1``,
``mlp_channels.gate.norm``, ``mlp_channels.gate.proj``, ``mlp_channels.fc2``, ``norm``, ``head``), so
timm's ``gmlp_s16_224`` state_dict loads unchanged. Init as timm / the reference: Flax-style
(see :func:`plugattn.backbones.layers.init_mixer_weights`), spatial W ~ N(0, 1e-6), b = 1.

Reference parameter count (1000 classes): timm's published count for ``gmlp_s16_224``, 19,422,656,
re-measured by building timm's model with random weights (timm's model card: 19.4M; the paper's Table 1
lists 19.5M for gMLP-S as quoted in secondary copies of that table -- not checked against the paper itself).

Injection sites: :class:`~plugattn.backbones.layers.PatchEmbed` gives the only (B, C, H, W) map; every
:class:`SpatialGatingBlock` maps tokens to tokens, so the injector refuses it with its
"(B, C, H, W) feature map" error.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.fx
import torch.nn as nn
from einops import rearrange

from ..layers import DropPath, PatchEmbed, PatchTokenModel, get_act, init_mixer_weights
from ..registry import register_backbone

# einops cannot see torch.fx proxies: record rearrange as one opaque call
torch.fx.wrap("rearrange")

__all__ = ["SpatialGatingUnit", "GatedMlp", "SpatialGatingBlock", "GMlp", "gmlp_s16_224"]


class SpatialGatingUnit(nn.Module):
    """s(Z) = Z_1 * (W LayerNorm(Z_2) + b), W mixing the ``num_tokens`` tokens (gMLP Eq. (2)-(3)).
    (B, n, 2 d) -> (B, n, d).

    Example:
        >>> SpatialGatingUnit(dim=16, num_tokens=9)(torch.randn(2, 9, 16)).shape
        torch.Size([2, 9, 8])
    """

    def __init__(self, dim: int, num_tokens: int) -> None:
        super().__init__()
        if dim % 2:
            raise ValueError(f"SpatialGatingUnit splits its channels in two halves: dim must be even, got {dim}")
        self.norm = nn.LayerNorm(dim // 2)
        self.proj = nn.Linear(num_tokens, num_tokens)  # W (n x n) and b (n)

    def init_weights(self) -> None:
        """W near zero and b = 1: the gate starts as the identity (Section 2.1)."""
        nn.init.normal_(self.proj.weight, std=1e-6)
        nn.init.ones_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u, v = x.chunk(2, dim=-1)  # Z_1, Z_2: (B, n, d) each
        v = rearrange(self.norm(v), "b n d -> b d n")
        v = rearrange(self.proj(v), "b d n -> b n d")  # spatial projection across tokens
        return u * v


class GatedMlp(nn.Module):
    """The gMLP channel path: ``fc2(SGU(GELU(fc1(x))))`` -- Eq. (1) with U = fc1, V = fc2.

    Example:
        >>> GatedMlp(16, 64, num_tokens=9)(torch.randn(2, 9, 16)).shape
        torch.Size([2, 9, 16])
    """

    def __init__(self, dim: int, hidden: int, num_tokens: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = get_act("gelu")
        self.gate = SpatialGatingUnit(hidden, num_tokens)
        self.fc2 = nn.Linear(hidden // 2, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, n, d_model) -> (B, n, d_ffn) -> (B, n, d_ffn / 2) -> (B, n, d_model)
        return self.fc2(self.gate(self.act(self.fc1(x))))


class SpatialGatingBlock(nn.Module):
    """gMLP block (Fig. 1): ``x + GatedMlp(LayerNorm(x))``. Tokens in, tokens out.

    Example:
        >>> SpatialGatingBlock(16, 64, num_tokens=9)(torch.randn(2, 9, 16)).shape
        torch.Size([2, 9, 16])
    """

    def __init__(self, dim: int, hidden: int, num_tokens: int, drop_path: float = 0.0) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.mlp_channels = GatedMlp(dim, hidden, num_tokens)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop_path(self.mlp_channels(self.norm(x)))


class GMlp(PatchTokenModel):
    """gMLP for images: patch embedding, ``depth`` :class:`SpatialGatingBlock`, LayerNorm, mean over tokens,
    linear head. Defined for ``img_size`` x ``img_size`` inputs only.

    Example:
        >>> model = GMlp(img_size=32, patch_size=8, embed_dim=16, depth=2, mlp_ratio=4, num_classes=5)
        >>> model(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 5])
    """

    def __init__(
        self,
        img_size: int = 224,
        patch_size: int = 16,
        in_chans: int = 3,
        num_classes: int = 1000,
        embed_dim: int = 256,
        depth: int = 30,
        mlp_ratio: float = 6.0,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        grid = self.setup_grid(img_size, patch_size, in_chans, embed_dim, depth, num_classes, drop_path_rate)
        hidden = int(mlp_ratio * embed_dim)
        if hidden < 2 or hidden % 2:
            raise ValueError(f"mlp_ratio * embed_dim (d_ffn) must be an even integer >= 2, got mlp_ratio={mlp_ratio!r} "
                             f"with embed_dim={embed_dim} (d_ffn={hidden})")

        self.stem = PatchEmbed(in_chans, embed_dim, patch_size)
        self.blocks = nn.Sequential(*[
            SpatialGatingBlock(embed_dim, hidden, grid * grid, drop_path_rate) for _ in range(depth)
        ])
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        init_mixer_weights(self)


@register_backbone("gmlp_s16_224", family="mlp", paper="Liu, Dai, So, Le: Pay Attention to MLPs", venue="NeurIPS",
                   year=2021, params=19_422_656)
def gmlp_s16_224(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> GMlp:
    """gMLP-S (Table 1): 30 blocks, d_model=256, d_ffn=1536, 16 x 16 patches, 224 x 224 only
    (timm: 19,422,656 parameters).

    Example:
        >>> len(gmlp_s16_224().blocks)
        30
    """
    return GMlp(num_classes=num_classes, in_chans=in_chans, patch_size=16, embed_dim=256, depth=30, mlp_ratio=6.0,
                **kwargs)
