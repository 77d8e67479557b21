"""MLP-Mixer (S/16 and B/16).

Paper: Ilya Tolstikhin, Neil Houlsby, Alexander Kolesnikov, Lucas Beyer, Xiaohua Zhai, Thomas Unterthiner,
Jessica Yung, Andreas Steiner, Daniel Keysers, Jakob Uszkoreit, Mario Lucic, Alexey Dosovitskiy,
"MLP-Mixer: An all-MLP Architecture for Vision", NeurIPS 2021. Section 2, Eq. (1):

* per-patch linear embedding (a P x P convolution with stride P) of the image into S = HW/P^2 tokens of
  C channels -- the table X (S, C);
* U_{*,i} = X_{*,i} + W_2 GELU(W_1 LayerNorm(X)_{*,i})   -- token mixing: an MLP across the S patches,
  applied to every channel column i, hidden width D_S;
* Y_{j,*} = U_{j,*} + W_4 GELU(W_3 LayerNorm(U)_{j,*})   -- channel mixing: an MLP across the C
  channels, applied to every patch row j, hidden width D_C;
* after the last block: LayerNorm, global average pooling over the patches, linear head.

Table 1: S/16 C=512, D_S=256, D_C=2048, 8 layers; B/16 C=768, D_S=384, D_C=3072, 12 layers
(D_S = C/2, D_C = 4C, as timm's ``mlp_ratio=(0.5, 4.0)``).

Fixed input size: the token-mixing MLP is a Linear over the S patches, so a model is defined only for
the ``img_size`` it was built for (224 by default: S = 196). Other sizes raise a ``ValueError`` naming
the size given and the size expected (the check is one ``torch.fx.wrap``-ed call, kept in traced graphs);
build with ``img_size=`` for another resolution.

Parameter names are timm's (``stem.proj``, ``blocks.i.norm1``, ``mlp_tokens.fc1``, ``mlp_channels.fc2``,
``norm``, ``head``), so timm's ``mixer_s16_224`` / ``mixer_b16_224`` state_dicts load unchanged. Init as
the reference (Flax-style, as timm): Xavier-uniform Linear weights, MLP biases N(0, 1e-6), LeCun-normal
patch embedding, zero head.

Reference parameter counts (1000 classes), timm's published counts, re-measured here by building
timm's models with random weights: mixer_s16_224 18,528,264 (paper Table 1: 18M), mixer_b16_224
59,880,472 (paper: 59M).

Injection sites: :class:`~plugattn.backbones.layers.PatchEmbed` gives the only (B, C, H, W) map
(``inject_attention(model, "eca", after="PatchEmbed")``); every :class:`MixerBlock` maps tokens
(B, S, C) to tokens, so the injector refuses it with its "(B, C, H, W) feature map" error.
"""
from __future__ import annotations

from functools import partial
from typing import Any, Sequence

import torch
import torch.fx
import torch.nn as nn
from einops import rearrange

from ..layers import DropPath, Mlp, PatchEmbed, PatchTokenModel, init_mixer_weights
from ..registry import register_backbone

# recorded as single calls by torch.fx: einops cannot see proxies, and the size check must run at run time
torch.fx.wrap("rearrange")

__all__ = ["MixerBlock", "MlpMixer", "mixer_s16_224", "mixer_b16_224"]


class MixerBlock(nn.Module):
    """Mixer layer (Eq. (1)): token-mixing MLP across the ``num_tokens`` patches, then channel-mixing MLP
    across the ``dim`` channels, each pre-norm with a skip connection. (B, S, C) -> (B, S, C).

    Example:
        >>> MixerBlock(dim=16, num_tokens=9, tokens_hidden=8, channels_hidden=64)(torch.randn(2, 9, 16)).shape
        torch.Size([2, 9, 16])
    """

    def __init__(self, dim: int, num_tokens: int, tokens_hidden: int, channels_hidden: int,
                 drop_path: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp_tokens = Mlp(num_tokens, tokens_hidden)  # W_1, W_2: mixes along the S patches
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp_channels = Mlp(dim, channels_hidden)  # W_3, W_4: mixes along the C channels
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # token mixing acts on the columns of X: (B, S, C) -> (B, C, S), MLP over S, back to (B, S, C)
        mixed = rearrange(self.norm1(x), "b s c -> b c s")
        mixed = rearrange(self.mlp_tokens(mixed), "b c s -> b s c")
        x = x + self.drop_path(mixed)
        return x + self.drop_path(self.mlp_channels(self.norm2(x)))


class MlpMixer(PatchTokenModel):
    """MLP-Mixer: patch embedding, ``depth`` :class:`MixerBlock` layers, LayerNorm, mean over patches,
    linear head. Defined for ``img_size`` x ``img_size`` inputs only (the token MLP is sized to the patches).

    Example:
        >>> model = MlpMixer(img_size=32, patch_size=8, embed_dim=16, depth=2, num_classes=5)
        >>> model(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 5])
        >>> model.forward_features(torch.randn(2, 3, 32, 32)).shape  # 4 x 4 patches
        torch.Size([2, 16, 16])
    """

    def __init__(
        self,
        img_size: int = 224,
        patch_size: int = 16,
        in_chans: int = 3,
        num_classes: int = 1000,
        embed_dim: int = 512,
        depth: int = 8,
        mlp_ratio: Sequence[float] = (0.5, 4.0),
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        grid = self.setup_grid(img_size, patch_size, in_chans, embed_dim, depth, num_classes, drop_path_rate)
        if len(mlp_ratio) != 2 or not all(r > 0 for r in mlp_ratio):
            raise ValueError(f"mlp_ratio must be two positive ratios (tokens, channels), got {mlp_ratio!r}")
        tokens_hidden, channels_hidden = int(mlp_ratio[0] * embed_dim), int(mlp_ratio[1] * embed_dim)

        self.stem = PatchEmbed(in_chans, embed_dim, patch_size)
        self.blocks = nn.Sequential(*[
            MixerBlock(embed_dim, grid * grid, tokens_hidden, channels_hidden, drop_path_rate) for _ in range(depth)
        ])
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        init_mixer_weights(self)


_PAPER = ("Tolstikhin, Houlsby, Kolesnikov, Beyer, Zhai, Unterthiner, Yung, Steiner, Keysers, Uszkoreit, Lucic, "
          "Dosovitskiy: MLP-Mixer: An all-MLP Architecture for Vision")
_register = partial(register_backbone, family="mlp", paper=_PAPER, venue="NeurIPS", year=2021)


@_register("mixer_s16_224", params=18_528_264)
def mixer_s16_224(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> MlpMixer:
    """Mixer-S/16 (Table 1): C=512, D_S=256, D_C=2048, 8 layers, 224 x 224 only (timm: 18,528,264 parameters).

    Example:
        >>> len(mixer_s16_224().blocks)
        8
    """
    return MlpMixer(num_classes=num_classes, in_chans=in_chans, patch_size=16, embed_dim=512, depth=8, **kwargs)


@_register("mixer_b16_224", params=59_880_472)
def mixer_b16_224(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> MlpMixer:
    """Mixer-B/16 (Table 1): C=768, D_S=384, D_C=3072, 12 layers, 224 x 224 only (timm: 59,880,472 parameters).

    Example:
        >>> mixer_b16_224(num_classes=10).head.out_features
        10
    """
    return MlpMixer(num_classes=num_classes, in_chans=in_chans, patch_size=16, embed_dim=768, depth=12, **kwargs)
