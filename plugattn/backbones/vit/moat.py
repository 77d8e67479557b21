"""MOAT-0.

Paper: Chenglin Yang, Siyuan Qiao, Qihang Yu, Xiaoding Yuan, Yukun Zhu, Alan Yuille, Hartwig Adam,
Liang-Chieh Chen, "MOAT: Alternating Mobile Convolution and Attention Brings Strong Vision Models",
ICLR 2023. Sec. 3 / Fig. 2 and Table 1 (MOAT-0: 27.8M parameters, 5.7 GFLOPs at 224):

* MBConv block (Sec. 3.1, as CoAtNet's): pre-norm BatchNorm, 1x1 expansion (x4) + BN + GELU, 3x3
  depthwise (stride s) + BN + GELU, squeeze-excitation (hidden = out/4, Swish, sigmoid), 1x1 shrink conv
  with bias; shortcut = 2x2 average pool (stride s, when s > 1) then a 1x1 conv with bias (when the width
  changes).
* MOAT block (Sec. 3.2, Fig. 2c): the transformer block with its MLP replaced by an MBConv *placed
  before* the attention, no SE in that MBConv (the strided depthwise conv does the downsampling):
  ``x = MBConv(x)``, then ``x = x + Attention(LN(x))``. Attention: multi-head self-attention with
  head size 32 and separate q, k, v, o projections (with bias), plus a 2-D relative position bias per
  head (CoAtNet's): a learned (heads, 2P-1, 2P-1) table indexed by the key-minus-query offset,
  softmax(Q K^T / sqrt(d) + B) V, computed with ``F.scaled_dot_product_attention`` (B as the additive mask).
* stages (Table 1, MOAT-0): stem = 3x3 stride-2 conv 64 + BN + GELU + 3x3 conv 64 (conv only, the
  next block's pre-norm normalises it); MBConv x2 (96), MBConv x3 (192), MOAT x7 (384), MOAT x2 (768),
  each stage's first block with stride 2; head = global average pool, LayerNorm, linear classifier.

Attention window: at 224 the attention is global (the window is the whole 14x14 / 7x7 map, the
official classification setting). For larger inputs the paper (Sec. 3.3, downstream tasks) uses window
attention with the classification window size: pass ``window_sizes=((14, 14), (7, 7))`` (a map not
divisible by its window raises ``ValueError``). The relative-position tables are sized for the 14x14
(stage 3) and 7x7 (stage 4) windows of 224 inputs; any other window resizes the table bilinearly to
(2h-1, 2w-1), as the official code does, so global attention works at any input size divisible by
32 (tested at 64). Window partition and the bias are ``torch.fx.wrap``-ed: the model traces.

Layout follows the official TensorFlow code (google-research/deeplab2 ``model/pixel_encoder/moat.py``,
``model/layers/moat_blocks.py``, ``moat_attention.py``): BatchNorm eps 1e-3 (Keras' default), LayerNorm
eps 1e-5, exact (erf) GELU, init N(0, 0.02) for every conv / linear kernel and the position tables, zero
biases, stochastic depth growing as ``rate * block_index / num_blocks``. Deviation: convolutions pad
symmetrically (PyTorch), where TensorFlow's "same" pads stride-2 layers only at the bottom/right; this
changes no parameter. Timm and torchvision do not implement MOAT (checked: ``timm.list_models("*moat*")``
is empty), so there is no weight-compatibility test.

Reference parameter count: Table 1 of the paper, MOAT-0 27.8M (rounded to 0.1M). This implementation
has 27,846,892 parameters at 1000 classes (0.17% above 27.8M, inside its rounding interval
[27.75M, 27.85M)); the test asserts 0.5% of 27.8M and re-derives the per-block counts from the layer
shapes above (stem, MBConv with SE, MOAT block with its relative-position tables, head).

Injection sites (modules producing (B, C, H, W) maps): the stem ``ConvNormAct``, :class:`MBConvBlock`
(5 in stages 1-2, plus the one inside each MOAT block) and :class:`MOATBlock` (9), e.g.
``inject_attention(model, "eca", after="MOATBlock")``. :class:`MOATAttention` maps tokens
(B * windows, N, C) and is refused by the injector with its "(B, C, H, W) feature map" error.
"""
from __future__ import annotations

from functools import partial
from typing import Any, List, Optional, Sequence, Tuple

import torch
import torch.fx
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from ..._validate import check_int
from ...attention.se import SELayer
from ..layers import ConvNormAct, DropPath, ImageBackbone, check_probability
from ..registry import register_backbone

__all__ = [
    "relative_position_bias",
    "window_grid",
    "MBConvBlock",
    "MOATAttention",
    "MOATBlock",
    "MOAT",
    "moat_0",
]

torch.fx.wrap("rearrange")

# Keras BatchNormalization's epsilon (the official code uses its default)
BatchNorm2d = partial(nn.BatchNorm2d, eps=1e-3)
Window = Optional[Tuple[int, int]]


@torch.fx.wrap
def relative_position_bias(table: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Relative position bias (heads, h*w, h*w) of an ``height`` x ``width`` window from a
    (heads, 2P-1, 2Q-1) table: ``B[n, (i, j), (x, y)] = T[n, x - i + h - 1, y - j + w - 1]`` for query
    (i, j) and key (x, y). A table of another size is first resized bilinearly to (2h-1, 2w-1).

    Example:
        >>> relative_position_bias(torch.zeros(2, 13, 13), 7, 7).shape
        torch.Size([2, 49, 49])
    """
    span = (2 * height - 1, 2 * width - 1)
    if tuple(table.shape[-2:]) != span:
        table = F.interpolate(table.unsqueeze(0), size=span, mode="bilinear", align_corners=False).squeeze(0)
    rows = torch.arange(height, device=table.device)
    cols = torch.arange(width, device=table.device)
    row_offset = rows[None, :] - rows[:, None] + height - 1  # (h query, h key)
    col_offset = cols[None, :] - cols[:, None] + width - 1  # (w query, w key)
    bias = table[:, row_offset[:, None, :, None], col_offset[None, :, None, :]]  # (heads, i, j, x, y)
    return rearrange(bias, "n i j x y -> n (i j) (x y)")


@torch.fx.wrap
def window_grid(height: int, width: int, window: Window) -> Tuple[int, int]:
    """The attention window on a ``height`` x ``width`` map: the whole map for ``None`` (global),
    else ``window`` after checking it tiles the map (``ValueError`` otherwise).

    Example:
        >>> window_grid(14, 14, None), window_grid(28, 28, (14, 14))
        ((14, 14), (14, 14))
    """
    if window is None:
        return height, width
    if height % window[0] or width % window[1]:
        raise ValueError(
            f"MOAT: a {height}x{width} stage map does not tile into {window[0]}x{window[1]} attention windows; "
            "use an input size whose stage maps are multiples of the window, or window_sizes=None (global)"
        )
    return window[0], window[1]


class MBConvBlock(nn.Module):
    """MOAT / CoAtNet MBConv: ``shortcut(x) + DropPath(shrink(SE(dw(expand(BN(x))))))``, (B, C_in, H, W)
    -> (B, C_out, H/s, W/s). ``se_ratio=None`` drops the SE (inside MOAT blocks).

    Unlike :class:`plugattn.backbones.layers.mbconv.MBConv` (MobileNet layout: no pre-norm, BN after the
    projection, identity shortcut only), this is the pre-norm layout with a pooled / projected shortcut.

    Example:
        >>> MBConvBlock(16, 32, stride=2)(torch.randn(2, 16, 8, 8)).shape
        torch.Size([2, 32, 4, 4])
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, expansion: int = 4,
                 se_ratio: Optional[float] = 0.25, drop_path: float = 0.0) -> None:
        super().__init__()
        check_int("in_channels", in_channels)
        check_int("out_channels", out_channels)
        check_int("expansion", expansion)
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride!r}")
        inner = out_channels * expansion  # the official code expands the OUTPUT width
        shortcut: List[nn.Module] = []
        if stride > 1:
            # TF "same" 2x2 average pool: odd maps average the valid pixels only
            shortcut.append(nn.AvgPool2d(2, stride, ceil_mode=True, count_include_pad=False))
        if in_channels != out_channels:
            shortcut.append(nn.Conv2d(in_channels, out_channels, 1))
        self.shortcut = nn.Sequential(*shortcut)
        self.pre_norm = BatchNorm2d(in_channels)
        self.expand = ConvNormAct(in_channels, inner, 1, act="gelu", norm=BatchNorm2d)  # (B, 4C_out, H, W)
        self.depthwise = ConvNormAct(inner, inner, 3, stride, groups=inner, act="gelu", norm=BatchNorm2d)
        if se_ratio is None:
            self.se: nn.Module = nn.Identity()
        else:
            self.se = SELayer(inner, hidden_channels=max(1, int(out_channels * se_ratio)), act="silu")
        self.shrink = nn.Conv2d(inner, out_channels, 1)  # linear, with bias, no norm
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.depthwise(self.expand(self.pre_norm(x)))  # (B, 4C_out, H/s, W/s)
        out = self.shrink(self.se(out))  # -> (B, C_out, H/s, W/s)
        return self.shortcut(x) + self.drop_path(out)


class MOATAttention(nn.Module):
    """Multi-head self-attention with a 2-D relative position bias on window tokens:
    softmax(Q K^T / sqrt(d) + B) V with ``F.scaled_dot_product_attention``.
    ``forward(tokens, height, width)``: (B', h*w, C) tokens of h x w windows -> (B', h*w, C).

    Example:
        >>> attn = MOATAttention(64, head_dim=32, position_size=7)
        >>> attn(torch.randn(2, 16, 64), 4, 4).shape
        torch.Size([2, 16, 64])
    """

    def __init__(self, dim: int, head_dim: int = 32, position_size: int = 7) -> None:
        super().__init__()
        check_int("dim", dim)
        check_int("head_dim", head_dim)
        if dim % head_dim:
            raise ValueError(f"head_dim must divide dim={dim}, got head_dim={head_dim}")
        check_int("position_size", position_size)
        self.num_heads = dim // head_dim
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.o = nn.Linear(dim, dim)
        span = 2 * position_size - 1
        self.relative_position_embedding = nn.Parameter(torch.zeros(self.num_heads, span, span))

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        heads = self.num_heads
        q = rearrange(self.q(x), "b n (h d) -> b h n d", h=heads)  # (B', heads, N, d)
        k = rearrange(self.k(x), "b n (h d) -> b h n d", h=heads)
        v = rearrange(self.v(x), "b n (h d) -> b h n d", h=heads)
        bias = relative_position_bias(self.relative_position_embedding, height, width).to(q.dtype)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)  # (B', heads, N, d)
        return self.o(rearrange(out, "b h n d -> b n (h d)"))


class MOATBlock(nn.Module):
    """MOAT block (Fig. 2c): ``x = MBConv(x)`` (no SE, stride s), then ``x = x + Attention(LN(x))`` on
    windows (``window=None``: the whole map). (B, C_in, H, W) -> (B, C_out, H/s, W/s).

    Example:
        >>> MOATBlock(32, 64, stride=2, position_size=4)(torch.randn(1, 32, 8, 8)).shape
        torch.Size([1, 64, 4, 4])
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, head_dim: int = 32,
                 position_size: int = 7, window: Window = None, drop_path: float = 0.0) -> None:
        super().__init__()
        if window is not None:
            if len(window) != 2:
                raise ValueError(f"window must be None or (height, width), got {window!r}")
            window = (check_int("window[0]", window[0]), check_int("window[1]", window[1]))
        self.window = window
        self.mbconv = MBConvBlock(in_channels, out_channels, stride, se_ratio=None, drop_path=drop_path)
        self.attention_norm = nn.LayerNorm(out_channels, eps=1e-5)
        self.attention = MOATAttention(out_channels, head_dim, position_size)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.mbconv(x)  # (B, C, H, W)
        height, width = x.shape[2], x.shape[3]
        window_h, window_w = window_grid(height, width, self.window)
        tokens = self.attention_norm(x.permute(0, 2, 3, 1))  # (B, H, W, C), LN over channels
        tokens = rearrange(tokens, "b (nh wh) (nw ww) c -> (b nh nw) (wh ww) c", wh=window_h, ww=window_w)
        tokens = self.attention(tokens, window_h, window_w)  # (B * windows, wh * ww, C)
        attended = rearrange(tokens, "(b nh nw) (wh ww) c -> b c (nh wh) (nw ww)", nh=height // window_h,
                             nw=width // window_w, wh=window_h)
        return x + self.drop_path(attended)


class MOAT(ImageBackbone):
    """MOAT (Yang et al., ICLR 2023): stem, two MBConv stages, two MOAT stages, pooled LN + linear head.

    Example:
        >>> model = MOAT(stem_width=8, widths=(8, 16, 32, 64), depths=(1, 1, 1, 1), num_classes=3)
        >>> model(torch.randn(1, 3, 64, 64)).shape
        torch.Size([1, 3])
    """

    default_input_size = 224

    def __init__(self, stem_width: int = 64, widths: Sequence[int] = (96, 192, 384, 768),
                 depths: Sequence[int] = (2, 3, 7, 2), head_dim: int = 32, position_sizes: Sequence[int] = (14, 7),
                 window_sizes: Sequence[Window] = (None, None), num_classes: int = 1000, in_chans: int = 3,
                 drop_path_rate: float = 0.0) -> None:
        super().__init__()
        self.in_chans = in_chans
        check_int("num_classes", num_classes, minimum=0)
        check_int("in_chans", in_chans)
        check_int("stem_width", stem_width)
        check_probability("drop_path_rate", drop_path_rate)
        if len(widths) != 4 or len(depths) != 4 or len(position_sizes) != 2 or len(window_sizes) != 2:
            raise ValueError(
                f"need 4 widths, 4 depths, 2 position_sizes and 2 window_sizes (for the MOAT stages), got "
                f"{list(widths)}, {list(depths)}, {list(position_sizes)}, {list(window_sizes)}"
            )
        for index, depth in enumerate(depths):
            check_int(f"depths[{index}]", depth)
        self.num_classes = num_classes
        self.num_features = widths[-1]
        # (B, 3, H, W) -> (B, stem, H/2, W/2); the second conv is not normalised (the next pre-norm is)
        self.stem = nn.Sequential(
            ConvNormAct(in_chans, stem_width, 3, 2, act="gelu", norm=BatchNorm2d, bias=True),
            nn.Conv2d(stem_width, stem_width, 3, padding=1),
        )
        total = sum(depths)
        stages: List[nn.Module] = []
        in_width, block_index = stem_width, 0
        for stage, (width, depth) in enumerate(zip(widths, depths)):
            blocks: List[nn.Module] = []
            for local in range(depth):
                stride = 2 if local == 0 else 1
                rate = drop_path_rate * block_index / total
                if stage < 2:
                    blocks.append(MBConvBlock(in_width, width, stride, drop_path=rate))
                else:
                    blocks.append(MOATBlock(in_width, width, stride, head_dim, position_sizes[stage - 2],
                                            window_sizes[stage - 2], drop_path=rate))
                in_width, block_index = width, block_index + 1
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.norm = nn.LayerNorm(self.num_features, eps=1e-5)
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, MOATAttention):
                nn.init.normal_(module.relative_position_embedding, std=0.02)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_chans, H, W) -> the last stage's map (B, 768, H/32, W/32)."""
        return self.stages(self.stem(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.forward_features(x).mean(dim=(2, 3))  # (B, C)
        return self.head(self.norm(pooled))


@register_backbone(
    "moat_0",
    family="vit",
    paper="Yang, Qiao, Yu, Yuan, Zhu, Yuille, Adam, Chen: MOAT: Alternating Mobile Convolution and Attention "
    "Brings Strong Vision Models",
    venue="ICLR",
    year=2023,
    params=27_800_000,
)
def moat_0(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> MOAT:
    """MOAT-0: stem 64, widths (96, 192, 384, 768), blocks (2, 3, 7, 2) (paper Table 1: 27.8M parameters);
    stochastic depth 0.2, the official ``moat0`` configuration (``survival_prob=0.8``).

    Example:
        >>> moat_0(num_classes=0)(torch.randn(1, 3, 64, 64)).shape
        torch.Size([1, 768])
    """
    kwargs.setdefault("drop_path_rate", 0.2)  # official moat0: survival_prob=0.8
    return MOAT(num_classes=num_classes, in_chans=in_chans, **kwargs)
