"""Sequencer2D-S (Sequencer: deep LSTMs for image classification).

Paper: Yuki Tatsunami, Masato Taki, "Sequencer: Deep LSTM for Image Classification", NeurIPS 2022.
Section 3.2, Fig. 2 and Eq. (3)-(6), Table 7 (architecture):

* BiLSTM2D: the (H, W, C) map is read as W sequences of length H (vertical) and H sequences of length W
  (horizontal); each goes through a bidirectional LSTM of hidden size D (both directions: 2D outputs);
  H_ver and H_hor are concatenated (4D channels) and projected back to C by a fully-connected layer:
  BiLSTM2D(X) = FC(concat(H_ver, H_hor));
* Sequencer2D block: ``x + BiLSTM2D(LN(x))`` then ``x + MLP(LN(x))`` (MLP ratio 3, GELU);
* Sequencer2D-S: 4 stages, layers (4, 3, 8, 3), patch sizes (7, 2, 1, 1), channels (192, 384, 384, 384),
  LSTM hidden sizes (48, 96, 96, 96); the first is a patch embedding, the others a
  ``patch_size`` x ``patch_size`` strided convolution (1 x 1 for the last two); LayerNorm, global
  average pooling, linear head.

Runs at any input size (LSTMs read sequences of any length).

Layout: stages and blocks take and return channels-first (B, C, H, W) maps, so they are injection sites
(``inject_attention(model, "eca", after="Sequencer2dBlock")`` or ``after="Sequencer2dStage"``); inside a
block the LayerNorms, LSTMs and MLP work channels-last (B, H, W, C). The sequences are formed with
``einops.rearrange`` recorded as one ``torch.fx`` call with sizes read from the tensor, and ``nn.LSTM`` is
an FX leaf, so the model traces.

Parameter names are timm's (``stem.proj``, ``stages.i.downsample.down``, ``stages.i.blocks.j.norm1``,
``rnn_tokens.rnn_v`` / ``rnn_h`` / ``fc``, ``mlp_channels.fc1``, ``norm``); timm's ``head.fc`` is our
``head`` (renamed by :meth:`Sequencer2d.convert_external_state_dict`), so timm's ``sequencer2d_s``
state_dict loads. Init as timm / the reference code (Flax-style Linear and conv init, see
:func:`plugattn.backbones.layers.init_mixer_weights`; LSTMs U(-1/sqrt(D), 1/sqrt(D)), PyTorch's
default). Stochastic depth grows linearly from 0 to ``drop_path_rate`` over the blocks, as the official
two_dim_sequencer.py (timm uses one rate for every block).

Reference parameter count (1000 classes): timm's published count for ``sequencer2d_s``, 27,651,688,
re-measured by building timm's model with random weights (paper Table 1: 28M).
"""
from __future__ import annotations

import re
from typing import Any, Dict, Mapping, Sequence, Union

import torch
import torch.fx
import torch.nn as nn
from einops import rearrange

from ..._validate import check_int
from ..layers import DropPath, ImageBackbone, Mlp, PatchEmbed, check_rate, init_mixer_weights, linear_drop_path_rates
from ..registry import register_backbone

# einops cannot see torch.fx proxies: record rearrange as one opaque call
torch.fx.wrap("rearrange")

__all__ = ["LSTM2d", "Sequencer2dBlock", "Downsample2d", "Sequencer2dStage", "Sequencer2d", "sequencer2d_s"]


class LSTM2d(nn.Module):
    """BiLSTM2D (Eq. (3)-(6)): bidirectional LSTMs along H (``rnn_v``) and along W (``rnn_h``), outputs
    concatenated and projected back to ``dim`` by ``fc``. Channels-last: (B, H, W, C) -> (B, H, W, C).

    Example:
        >>> LSTM2d(16, hidden_size=4)(torch.randn(2, 5, 6, 16)).shape
        torch.Size([2, 5, 6, 16])
    """

    def __init__(self, dim: int, hidden_size: int) -> None:
        super().__init__()
        self.rnn_v = nn.LSTM(dim, hidden_size, batch_first=True, bidirectional=True)
        self.rnn_h = nn.LSTM(dim, hidden_size, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(4 * hidden_size, dim)  # concat(H_ver, H_hor): 2 directions x 2 axes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[1], x.shape[2]
        # vertical: every column is a sequence of length H -> (B*W, H, C)
        vertical = self.rnn_v(rearrange(x, "b h w c -> (b w) h c"))[0]
        vertical = rearrange(vertical, "(b w) h d -> b h w d", w=width)
        # horizontal: every row is a sequence of length W -> (B*H, W, C)
        horizontal = self.rnn_h(rearrange(x, "b h w c -> (b h) w c"))[0]
        horizontal = rearrange(horizontal, "(b h) w d -> b h w d", h=height)
        return self.fc(torch.cat([vertical, horizontal], dim=-1))  # (B, H, W, 4D) -> (B, H, W, C)


class Sequencer2dBlock(nn.Module):
    """Sequencer2D block: ``x + BiLSTM2D(LN(x))``, then ``x + MLP(LN(x))`` (Fig. 2).
    (B, C, H, W) -> (B, C, H, W); the computation runs channels-last.

    Example:
        >>> Sequencer2dBlock(16, hidden_size=4)(torch.randn(2, 16, 5, 6)).shape
        torch.Size([2, 16, 5, 6])
    """

    def __init__(self, dim: int, hidden_size: int, mlp_ratio: float = 3.0, drop_path: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.rnn_tokens = LSTM2d(dim, hidden_size)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp_channels = Mlp(dim, int(mlp_ratio * dim))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)  # (B, C, H, W) -> (B, H, W, C)
        x = x + self.drop_path(self.rnn_tokens(self.norm1(x)))
        x = x + self.drop_path(self.mlp_channels(self.norm2(x)))
        return x.permute(0, 3, 1, 2)  # -> (B, C, H, W)


class Downsample2d(nn.Module):
    """Patch merging between stages: a ``patch_size`` x ``patch_size`` convolution with the same stride.

    Example:
        >>> Downsample2d(8, 16, 2)(torch.randn(1, 8, 6, 6)).shape
        torch.Size([1, 16, 3, 3])
    """

    def __init__(self, in_dim: int, out_dim: int, patch_size: int) -> None:
        super().__init__()
        self.down = nn.Conv2d(in_dim, out_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(x)


class Sequencer2dStage(nn.Module):
    """One stage: optional :class:`Downsample2d`, then ``depth`` :class:`Sequencer2dBlock`. Channels-first.

    Example:
        >>> stage = Sequencer2dStage(8, 16, depth=1, patch_size=2, hidden_size=4, downsample=True)
        >>> stage(torch.randn(1, 8, 6, 6)).shape
        torch.Size([1, 16, 3, 3])
    """

    def __init__(self, in_dim: int, dim: int, depth: int, patch_size: int, hidden_size: int,
                 mlp_ratio: float = 3.0, downsample: bool = False,
                 drop_path: Union[float, Sequence[float]] = 0.0) -> None:
        super().__init__()
        # one rate for all blocks, or one per block (the model passes its linear schedule's slice)
        rates = [float(drop_path)] * depth if isinstance(drop_path, (int, float)) else list(drop_path)
        if len(rates) != depth:
            raise ValueError(f"drop_path needs one rate per block: depth={depth}, got {len(rates)} rates")
        if not downsample and in_dim != dim:
            raise ValueError(f"a stage without downsampling keeps its width: in_dim={in_dim} must equal dim={dim}")
        self.downsample = Downsample2d(in_dim, dim, patch_size) if downsample else nn.Identity()
        self.blocks = nn.Sequential(*[
            Sequencer2dBlock(dim, hidden_size, mlp_ratio, rate) for rate in rates
        ])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


class Sequencer2d(ImageBackbone):
    """Sequencer2D: patch embedding, four :class:`Sequencer2dStage`, LayerNorm, average pooling, head.

    Example:
        >>> model = Sequencer2d(layers=(1, 1), patch_sizes=(4, 2), embed_dims=(8, 16), hidden_sizes=(2, 4),
        ...                     mlp_ratios=(2.0, 2.0), num_classes=5)
        >>> model(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 5])
        >>> model.forward_features(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 16, 4, 4])
    """

    default_input_size = 224

    def __init__(
        self,
        layers: Sequence[int] = (4, 3, 8, 3),
        patch_sizes: Sequence[int] = (7, 2, 1, 1),
        embed_dims: Sequence[int] = (192, 384, 384, 384),
        hidden_sizes: Sequence[int] = (48, 96, 96, 96),
        mlp_ratios: Sequence[float] = (3.0, 3.0, 3.0, 3.0),
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self.in_chans = in_chans
        lengths = {len(layers), len(patch_sizes), len(embed_dims), len(hidden_sizes), len(mlp_ratios)}
        if len(lengths) != 1:
            raise ValueError(
                "layers, patch_sizes, embed_dims, hidden_sizes and mlp_ratios must have one entry per stage, got "
                f"lengths {len(layers)}, {len(patch_sizes)}, {len(embed_dims)}, {len(hidden_sizes)}, {len(mlp_ratios)}"
            )
        for name, values in (("layers", layers), ("patch_sizes", patch_sizes), ("embed_dims", embed_dims),
                             ("hidden_sizes", hidden_sizes)):
            for value in values:
                check_int(name, value)
        check_int("in_chans", in_chans)
        check_int("num_classes", num_classes, minimum=0)
        check_rate("drop_path_rate", drop_path_rate)
        self.num_classes = num_classes
        self.num_features = embed_dims[-1]

        self.stem = PatchEmbed(in_chans, embed_dims[0], patch_sizes[0])
        rates = linear_drop_path_rates(drop_path_rate, sum(layers))  # official: 0 -> rate over all blocks
        stages = []
        for i, (depth, dim) in enumerate(zip(layers, embed_dims)):
            in_dim = embed_dims[max(i - 1, 0)]
            first = sum(layers[:i])
            stages.append(Sequencer2dStage(in_dim, dim, depth, patch_sizes[i], hidden_sizes[i], mlp_ratios[i],
                                           downsample=i > 0, drop_path=rates[first:first + depth]))
        self.stages = nn.Sequential(*stages)
        self.norm = nn.LayerNorm(embed_dims[-1], eps=1e-6)
        self.head = nn.Linear(embed_dims[-1], num_classes) if num_classes > 0 else nn.Identity()
        init_mixer_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_chans, H, W) -> normalised (B, C, H/s, W/s) map (s = product of the patch sizes)."""
        x = self.stages(self.stem(x))
        x = self.norm(x.permute(0, 2, 3, 1))  # LayerNorm over channels, channels-last
        return x.permute(0, 3, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x).mean(dim=(2, 3)))  # global average pooling -> (B, C)

    def convert_external_state_dict(self, state_dict: Mapping[str, torch.Tensor],
                                    source: str) -> Dict[str, torch.Tensor]:
        """timm's classifier ``head.fc`` is our ``head``; every other key is shared."""
        if source != "timm":
            return dict(state_dict)
        return {re.sub(r"^head\.fc\.", "head.", key): value for key, value in state_dict.items()}


_PAPER = "Tatsunami, Taki: Sequencer: Deep LSTM for Image Classification"


@register_backbone("sequencer2d_s", family="mlp", paper=_PAPER, venue="NeurIPS", year=2022, params=27_651_688)
def sequencer2d_s(num_classes: int = 1000, in_chans: int = 3, drop_path_rate: float = 0.1,
                  **kwargs: Any) -> Sequencer2d:
    """Sequencer2D-S: layers (4, 3, 8, 3), channels (192, 384, 384, 384), LSTM hidden (48, 96, 96, 96)
    (timm: 27,651,688 parameters). ``drop_path_rate`` 0.1: the official README's ImageNet training command.

    Example:
        >>> [len(stage.blocks) for stage in sequencer2d_s().stages]
        [4, 3, 8, 3]
    """
    return Sequencer2d(num_classes=num_classes, in_chans=in_chans, drop_path_rate=drop_path_rate, **kwargs)
