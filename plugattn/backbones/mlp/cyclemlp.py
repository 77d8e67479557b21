"""CycleMLP-B1.

Paper: Shoufa Chen, Enze Xie, Chongjian Ge, Runjian Chen, Ding Liang, Ping Luo, "CycleMLP: A MLP-like
Architecture for Dense Prediction", ICLR 2022 (arXiv 2107.10224). Section 3 and Table 1, layout as the
official code (github.com/ShoufaChen/CycleMLP, ``cycle_mlp.py``, ``CycleMLP_B1``):

* Cycle fully-connected layer (Sec. 3.1, Eq. (3)-(4)), pseudo-kernel 1 x S_W (or S_H x 1): output channel
  j at (h, w) is ``sum_c W[j, c] x[c, h, w + delta(c)] + b[j]`` with the channel-dependent offset
  ``delta(c) = (c + floor(S/2)) mod S - floor(S/2)`` -- channels cycle through offsets 0, +1, -1, 0, ...
  for S = 3 -- and zero outside the map. The official code evaluates it with torchvision's
  ``deform_conv2d`` (1x1 kernel, these fixed integer offsets); :class:`CycleFC` computes the same thing
  with plain tensor ops: every channel is shifted by its offset (zero padding) and a 1x1 linear map
  follows. No torchvision dependency, traceable, runs at any input size;
* CycleMLP token mixer (Fig. 3): ``CycleFC(1 x 3)``, ``CycleFC(3 x 1)`` and a channel Linear, fused by
  ViP's split attention (:func:`plugattn.backbones.layers.reweight_branches`), then a Linear;
* block: ``x + mixer(LN(x))`` then ``x + MLP(LN(x))``; B1 (Table 1): a 7x7 stride-4 (padding 2) patch
  embedding, widths (64, 128, 320, 512), layers (2, 2, 4, 2), MLP ratio 4, a 3x3 stride-2 convolution
  between stages; LayerNorm, mean over positions, linear head.

Any input size (the cycle FC layers are sized by channels only); stages are (B, C, H, W), so the patch
embedding, every :class:`CycleBlock` and the downsampling convolutions are injection sites.

Init as the official code: truncated-normal (std 0.02) Linear and CycleFC weights, zero biases, unit/zero
LayerNorm, PyTorch-default convolutions. Parameter and buffer names are the official ones
(``network.i.j.attn.sfc_h.weight`` ``(C, C, 1, 1)``, ``...sfc_h.offset`` -- the fixed deform-conv offsets,
kept as the buffer the computation reads --, ``reweight``, ``norm``, ``head``), so an official checkpoint's
keys and shapes match. Stochastic depth: 0.1 by default, the official training run's rate (the
``CycleMLP_B1`` factory itself defaults to 0, but ``main.py`` passes ``--drop-path``, default 0.1).

Reference parameter count (1000 classes): the official README's model-zoo table gives 15M for CycleMLP-B1
(github.com/ShoufaChen/CycleMLP, rounded to 1M). Measured here: 15,155,400; the test re-derives that exact
number from the layer shapes of the official ``CycleMLP_B1`` (arithmetic written out in the test). The
registry records the published 15M with ``params_rounded_to=1M``: the count must round to it.
"""
from __future__ import annotations

from functools import partial
from typing import Any, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..._validate import check_int
from ..layers import Mlp, PatchEmbed, PermutatorBlock, reweight_branches
from ..registry import register_backbone
from .vip import VisionPermutator

__all__ = ["cycle_offsets", "shift_with_zeros", "CycleFC", "CycleMLPMixer", "CycleBlock", "CycleMLP", "cyclemlp_b1"]


def cycle_offsets(channels: int, kernel_size: Tuple[int, int]) -> torch.Tensor:
    """The official fixed deform-conv offsets of a cycle FC layer: (1, 2 * channels, 1, 1), the pair
    (dy, dx) of channel c at 2c, 2c + 1; the offset along the pseudo-kernel's long side is
    ``(c + S // 2) mod S - S // 2``, the other one 0.

    Example:
        >>> cycle_offsets(4, (1, 3)).flatten().tolist()
        [0.0, 0.0, 0.0, 1.0, 0.0, -1.0, 0.0, 0.0]
    """
    kernel_h, kernel_w = kernel_size
    if 1 not in (kernel_h, kernel_w):
        raise ValueError(f"kernel_size must be (1, S) or (S, 1), got {tuple(kernel_size)!r}")
    size = kernel_h * kernel_w
    offsets = torch.zeros(1, 2 * channels, 1, 1)
    for c in range(channels):
        delta = (c + size // 2) % size - size // 2
        offsets[0, 2 * c + (1 if kernel_h == 1 else 0), 0, 0] = delta
    return offsets


def shift_with_zeros(x: torch.Tensor, offset: int, dim: int) -> torch.Tensor:
    """``out[..., i, ...] = x[..., i + offset, ...]`` along ``dim`` (-1 or -2), zero where ``i + offset`` is
    outside the map -- a deformable-conv sample at an integer offset. Negative padding crops.

    Example:
        >>> shift_with_zeros(torch.tensor([[1., 2., 3.]]), 1, dim=-1)
        tensor([[2., 3., 0.]])
    """
    if dim == -1:
        return F.pad(x, (-offset, offset))
    return F.pad(x, (0, 0, -offset, offset))


class CycleFC(nn.Module):
    """Cycle fully-connected layer (Eq. (3)-(4)) with a (1, S) or (S, 1) pseudo-kernel:
    (B, C_in, H, W) -> (B, C_out, H, W). Each input channel is read at its fixed offset along W (1, S) or
    H (S, 1), then mixed by a 1x1 linear map ``weight`` (C_out, C_in, 1, 1) -- the official parameters.

    Example:
        >>> CycleFC(8, 16, (1, 3))(torch.randn(2, 8, 5, 5)).shape
        torch.Size([2, 16, 5, 5])
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Tuple[int, int], bias: bool = True) -> None:
        super().__init__()
        check_int("in_channels", in_channels)
        check_int("out_channels", out_channels)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = tuple(kernel_size)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.register_buffer("offset", cycle_offsets(in_channels, self.kernel_size))
        # which half of the (dy, dx) pairs moves, the axis it moves along, the offsets it can take
        self.along_width = self.kernel_size[0] == 1
        self.radius = max(self.kernel_size) // 2
        nn.init.kaiming_uniform_(self.weight, a=5 ** 0.5)  # nn.Conv2d's default; the model re-inits
        if self.bias is not None:
            bound = 1 / in_channels ** 0.5
            nn.init.uniform_(self.bias, -bound, bound)

    def shifted(self, x: torch.Tensor) -> torch.Tensor:
        """Every channel moved by its own offset: (B, C, H, W) -> (B, C, H, W)."""
        pair_index = 1 if self.along_width else 0
        channel_offsets = self.offset[:, pair_index::2]  # (1, C, 1, 1): dx (1 x S) or dy (S x 1) per channel
        dim = -1 if self.along_width else -2
        out = torch.zeros_like(x)
        for offset in range(-self.radius, self.radius + 1):
            out = torch.where(channel_offsets == offset, shift_with_zeros(x, offset, dim), out)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(self.shifted(x), self.weight, self.bias)  # the 1x1 channel mixing

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, bias={self.bias is not None}"


class CycleMLPMixer(nn.Module):
    """CycleMLP token mixer (the official ``CycleMLP`` module): CycleFC 1x3, CycleFC 3x1 and a channel
    Linear, fused by split attention, then a Linear. (B, H, W, C) -> (B, H, W, C), any H, W.

    Example:
        >>> CycleMLPMixer(16)(torch.randn(2, 5, 7, 16)).shape
        torch.Size([2, 5, 7, 16])
    """

    def __init__(self, dim: int, qkv_bias: bool = False) -> None:
        super().__init__()
        self.mlp_c = nn.Linear(dim, dim, bias=qkv_bias)
        self.sfc_h = CycleFC(dim, dim, (1, 3))  # official name; its offsets run along W
        self.sfc_w = CycleFC(dim, dim, (3, 1))  # official name; its offsets run along H
        self.reweight = Mlp(dim, dim // 4, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels_first = x.permute(0, 3, 1, 2)  # (B, H, W, C) -> (B, C, H, W) for the cycle FC layers
        x_h = self.sfc_h(channels_first).permute(0, 2, 3, 1)  # -> (B, H, W, C)
        x_w = self.sfc_w(channels_first).permute(0, 2, 3, 1)
        x_c = self.mlp_c(x)
        return self.proj(reweight_branches(x_h, x_w, x_c, self.reweight))


class CycleBlock(PermutatorBlock):
    """CycleMLP block: ``x + mixer(LN(x))`` then ``x + MLP(LN(x))``. (B, C, H, W) -> (B, C, H, W).

    Example:
        >>> CycleBlock(16)(torch.randn(2, 16, 5, 5)).shape
        torch.Size([2, 16, 5, 5])
    """

    def __init__(self, dim: int, mlp_ratio: float = 4.0, drop_path: float = 0.0, qkv_bias: bool = False) -> None:
        super().__init__(dim, CycleMLPMixer(dim, qkv_bias), mlp_ratio, drop_path)


class CycleMLP(VisionPermutator):
    """CycleMLP network (the official ``CycleNet``): overlapping 7x7 stride-4 patch embedding, stages of
    :class:`CycleBlock` separated by 3x3 stride-2 convolutions, LayerNorm, mean, linear head. Any input size.

    Example:
        >>> model = CycleMLP(layers=(1, 1), embed_dims=(8, 16), transitions=(True, True), mlp_ratios=(4, 4),
        ...                  num_classes=5)
        >>> model(torch.randn(2, 3, 40, 52)).shape
        torch.Size([2, 5])
        >>> model.forward_features(torch.randn(2, 3, 40, 52)).shape
        torch.Size([2, 16, 5, 7])
    """

    fixed_input = False
    trunc_normal_types = (nn.Linear, CycleFC)  # official ``cls_init_weights``

    def __init__(self, layers: Sequence[int] = (2, 2, 4, 2), embed_dims: Sequence[int] = (64, 128, 320, 512),
                 transitions: Sequence[bool] = (True, True, True, True), mlp_ratios: Sequence[float] = (4, 4, 4, 4),
                 **kwargs: Any) -> None:
        super().__init__(layers, embed_dims, transitions, mlp_ratios, **kwargs)

    def make_patch_embed(self, in_chans: int, dim: int, patch_size: int) -> nn.Module:
        """Overlapping patch embedding: 7x7 convolution, stride 4, padding 2 (official ``PatchEmbedOverlapping``)."""
        return PatchEmbed(in_chans, dim, 7, stride=4, padding=2)

    def make_downsample(self, in_dim: int, out_dim: int, patch_size: int) -> nn.Module:
        """3x3 convolution, stride 2, padding 1 (official ``Downsample``)."""
        return PatchEmbed(in_dim, out_dim, 3, stride=2, padding=1)

    def make_block(self, stage: int, dim: int, mlp_ratio: float, drop_path: float) -> nn.Module:
        return CycleBlock(dim, mlp_ratio, drop_path, self.qkv_bias)



_PAPER = "Chen, Xie, Ge, Chen, Liang, Luo: CycleMLP: A MLP-like Architecture for Dense Prediction"
_register = partial(register_backbone, family="mlp", paper=_PAPER, venue="ICLR", year=2022)


@_register("cyclemlp_b1", params=15_000_000, params_rounded_to=1_000_000)
def cyclemlp_b1(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> CycleMLP:
    """CycleMLP-B1: widths (64, 128, 320, 512), layers (2, 2, 4, 2), MLP ratio 4; any input size
    (official README: 15M parameters; measured 15,155,400); stochastic depth 0.1, the official training
    configuration (``main.py --drop-path`` default 0.1, passed to ``CycleMLP_B1``).

    Example:
        >>> cyclemlp_b1(num_classes=10)(torch.randn(1, 3, 64, 64)).shape
        torch.Size([1, 10])
    """
    kwargs.setdefault("drop_path_rate", 0.1)  # official main.py: --drop-path 0.1
    return CycleMLP(num_classes=num_classes, in_chans=in_chans, **kwargs)
