"""CMT-Ti: Convolutional Neural Networks Meet Vision Transformers.

Paper: Jianyuan Guo, Kai Han, Han Wu, Yehui Tang, Xinghao Chen, Yunhe Wang, Chang Xu, "CMT: Convolutional
Neural Networks Meet Vision Transformers", CVPR 2022 (author list of the CVPR version, CVF open access;
arXiv 2107.06263 v1 lists Guo, Han, Wu, Xu, Tang, Xu, Wang). Section 3 and Table 1 (CMT-Ti), checked line by line
against the authors' code (huawei-noah/Efficient-AI-Backbones ``cmt_pytorch/cmt.py``, model ``cmt_ti``):

* stem (Section 3.1): a 3x3 conv with stride 2, then two 3x3 convs, 16 channels; each conv is followed by
  GELU and then BatchNorm (the official order: conv -> GELU -> BN);
* four stages, each opened by a 2x2 conv with stride 2 and a LayerNorm (patch embedding), channels
  C = (46, 92, 184, 368), blocks (2, 2, 10, 2), heads (1, 2, 4, 8), FFN expansion R = 3.6;
* CMT block, Eq. (7)-(9):
  Y = LPU(X) = DWConv3x3(X) + X (Eq. (4));
  Z = LMHSA(LN(Y)) + Y;  out = IRFFN(LN(Z)) + Z;
* lightweight MHSA, Eq. (5): K and V come from the map reduced by a k x k depthwise conv with stride k
  (+ BN, official code), k = (8, 4, 2, 1); attention = Softmax(Q K'^T / sqrt(d_k) + B) V' with a learned
  relative position bias B in R^{heads x n x n/k^2}, one B per stage shared by its blocks (official code);
* IRFFN, Eq. (6): Conv1x1(F(Conv1x1(X))) with F(X) = DWConv3x3(X) + X; the expansion is followed by
  GELU + BN, the residual DWConv by GELU + BN, the projection by BN (official code);
* head: 1x1 conv 368 -> 1280 + BN + Swish, global average pooling, dropout 0.1, linear classifier. (The
  paper lists "global average pooling, a projection layer, a classifier"; the official code projects
  the map *before* pooling, with BN and Swish. We follow the code, which defines the released model.)

Input size: CMT-Ti is trained and evaluated at 160 x 160 (Table 1; official README ``--input-size 160``,
passed as ``img_size`` to the model), so ``default_input_size`` is 160 and B is sized for it: stage i
has an (160 / 2^(i+2))^2 query grid and a 5 x 5 key grid (the key grid is always input / 32).
Other sizes (any multiple of 32, e.g. 224 or 96): :func:`resize_relative_position_bias` resizes each
stage's B bilinearly at run time, separately over the key grid and over the query grid (B is a function
of a query position and a key position, i.e. a 4-D table (q_h, q_w, k_h, k_w) per head; bilinear
resizing of both 2-D position pairs is what the official code does for position tables,
``resize_pos_embed``). The function is ``torch.fx.wrap``-ed, so traced models keep it as one call and
pick the sizes at run time; at 160 it returns B itself.

Parameter count: Table 1 gives 9.5M for CMT-Ti (rounded to 0.1M). We measure 9,492,426 for 1000 classes
at img_size 160 (0.08% from 9.5M; 75,000 of them are the four B tables), and the test re-derives that
number layer by layer from the official layer shapes (conv biases before BN included). At img_size 224
the B tables grow to 288,120 entries (9,705,546 in all, 2.2% over 9.5M): the paper's figure holds at
the native 160 only. As a second check of the architecture, ``torch.utils.flop_counter`` gives
0.639 GMACs at 160 (Table 1: 0.6G FLOPs, counted as multiply-adds). Not in timm or torchvision, so
there is no external state_dict to load. Init as the official code: truncated normal (std 0.02) Linear weights, Kaiming-normal (fan_out)
conv weights, zero biases, norms 1 / 0, B ~ N(0, 1).

Injection sites producing (B, C, H, W) maps: :class:`CMTStem` (1), ``PatchEmbed`` (4), every
:class:`LocalPerceptionUnit` and :class:`InvertedResidualFFN` (16 each), every :class:`CMTBlock` (16;
blocks take and return channels-first maps), :class:`CMTStage` (4) and the head projection
(``ConvNormAct``, 1), e.g.
``inject_attention(model, "eca", after="CMTBlock")``. :class:`LightweightAttention` produces tokens
(B, N, C): the injector refuses it with its "(B, C, H, W) feature map" error.
"""
from __future__ import annotations

from typing import Any, Sequence, Tuple

import torch
import torch.fx
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from ..._validate import check_int
from ..layers import (
    ConvNormAct, DropPath, ImageBackbone, LayerNorm2d, PatchEmbed, check_heads, check_per_stage, check_rate,
    linear_drop_path_rates,
)
from ..registry import register_backbone

# einops cannot see torch.fx proxies: record rearrange as one opaque call so the model stays traceable
torch.fx.wrap("rearrange")

__all__ = [
    "CMTStem",
    "LocalPerceptionUnit",
    "LightweightAttention",
    "InvertedResidualFFN",
    "CMTBlock",
    "CMTStage",
    "CMT",
    "resize_relative_position_bias",
    "cmt_ti",
]


def conv_gelu_bn(in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1) -> nn.Sequential:
    """Conv (with bias) -> GELU -> BatchNorm, the order of CMT's stem and IRFFN expansion (official code).

    Example:
        >>> conv_gelu_bn(3, 8, 3, stride=2)(torch.randn(1, 3, 8, 8)).shape
        torch.Size([1, 8, 4, 4])
    """
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2)
    return nn.Sequential(conv, nn.GELU(), nn.BatchNorm2d(out_channels))


def resize_relative_position_bias(bias: torch.Tensor, query_grid: Tuple[int, int], key_grid: Tuple[int, int],
                                  query_size: Tuple[int, int], key_size: Tuple[int, int]) -> torch.Tensor:
    """The bias B (heads, qh*qw, kh*kw) defined on ``query_grid`` x ``key_grid``, resized bilinearly to
    ``query_size`` x ``key_size`` (first over the key grid, then over the query grid); B itself when the
    sizes already match.

    Wrapped with ``torch.fx.wrap``: traced models record one call, the size test runs at run time.

    Example:
        >>> resize_relative_position_bias(torch.zeros(2, 16, 4), (4, 4), (2, 2), (8, 8), (4, 4)).shape
        torch.Size([2, 64, 16])
    """
    if tuple(query_size) == tuple(query_grid) and tuple(key_size) == tuple(key_grid):
        return bias
    (qh, qw), (kh, kw) = query_grid, key_grid
    # every (head, query) row of B is a map over the key grid
    table = rearrange(bias.float(), "m (qh qw) (kh kw) -> (m qh qw) 1 kh kw", qh=qh, qw=qw, kh=kh, kw=kw)
    table = F.interpolate(table, size=tuple(key_size), mode="bilinear", align_corners=False)
    # then every (head, key) column is a map over the query grid
    table = rearrange(table, "(m qh qw) 1 kh kw -> (m kh kw) 1 qh qw", qh=qh, qw=qw)
    table = F.interpolate(table, size=tuple(query_size), mode="bilinear", align_corners=False)
    return rearrange(table, "(m kh kw) 1 qh qw -> m (qh qw) (kh kw)", kh=key_size[0], kw=key_size[1]).to(bias.dtype)


torch.fx.wrap("resize_relative_position_bias")


class CMTStem(nn.Module):
    """Three 3x3 conv -> GELU -> BN layers, the first with stride 2 (Section 3.1).

    Example:
        >>> CMTStem(3, 16)(torch.randn(1, 3, 32, 32)).shape
        torch.Size([1, 16, 16, 16])
    """

    def __init__(self, in_chans: int, channels: int) -> None:
        super().__init__()
        self.conv1 = conv_gelu_bn(in_chans, channels, 3, stride=2)
        self.conv2 = conv_gelu_bn(channels, channels, 3)
        self.conv3 = conv_gelu_bn(channels, channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(self.conv2(self.conv1(x)))  # (B, in_chans, H, W) -> (B, C, H/2, W/2)


class LocalPerceptionUnit(nn.Module):
    """LPU, Eq. (4): ``DWConv3x3(X) + X`` on a (B, C, H, W) map.

    Example:
        >>> LocalPerceptionUnit(8)(torch.randn(1, 8, 5, 5)).shape
        torch.Size([1, 8, 5, 5])
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dwconv(x) + x


class LightweightAttention(nn.Module):
    """Lightweight MHSA, Eq. (5): Softmax(Q K'^T / sqrt(d_k) + B) V', K' and V' from the map reduced by a
    ``sr_ratio`` x ``sr_ratio`` depthwise conv with that stride (+ BN). Tokens (B, N, C) -> tokens; ``bias``
    is B, (heads, N, N / sr_ratio^2), added to the logits through ``scaled_dot_product_attention``.

    Example:
        >>> attn = LightweightAttention(16, 2, sr_ratio=2)
        >>> attn(torch.randn(1, 16, 16), 4, 4, torch.zeros(2, 16, 4)).shape
        torch.Size([1, 16, 16])
    """

    def __init__(self, dim: int, num_heads: int, sr_ratio: int = 1, qkv_bias: bool = True) -> None:
        super().__init__()
        check_heads(dim, num_heads)
        check_int("sr_ratio", sr_ratio)
        self.num_heads = num_heads
        self.sr_ratio = sr_ratio
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.k = nn.Linear(dim, dim, bias=qkv_bias)
        self.v = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        if sr_ratio > 1:
            self.sr = nn.Sequential(
                nn.Conv2d(dim, dim, kernel_size=sr_ratio, stride=sr_ratio, groups=dim),
                nn.BatchNorm2d(dim),
            )

    def forward(self, x: torch.Tensor, height: int, width: int, bias: torch.Tensor) -> torch.Tensor:
        q = rearrange(self.q(x), "b n (h d) -> b h n d", h=self.num_heads)
        if self.sr_ratio > 1:
            x_map = rearrange(x, "b (h w) c -> b c h w", h=height, w=width)
            x = rearrange(self.sr(x_map), "b c h w -> b (h w) c")  # (B, N / k^2, C)
        k = rearrange(self.k(x), "b n (h d) -> b h n d", h=self.num_heads)
        v = rearrange(self.v(x), "b n (h d) -> b h n d", h=self.num_heads)
        # a float mask is added to Q K^T / sqrt(d) before the softmax: exactly "+ B" of Eq. (5)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype))  # (B, heads, N, d)
        return self.proj(rearrange(out, "b h n d -> b n (h d)"))


class InvertedResidualFFN(nn.Module):
    """IRFFN, Eq. (6): 1x1 expand (GELU, BN), ``DWConv3x3(x) + x`` (GELU, BN), 1x1 project (BN); maps to maps.

    Example:
        >>> InvertedResidualFFN(8, 3.6)(torch.randn(1, 8, 5, 5)).shape
        torch.Size([1, 8, 5, 5])
    """

    def __init__(self, dim: int, ratio: float) -> None:
        super().__init__()
        hidden = int(dim * ratio)  # official: int(46 * 3.6) = 165
        self.expand = conv_gelu_bn(dim, hidden, 1)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.act = nn.GELU()
        self.norm = nn.BatchNorm2d(hidden)
        self.project = nn.Sequential(nn.Conv2d(hidden, dim, 1), nn.BatchNorm2d(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.expand(x)  # (B, C, H, W) -> (B, R*C, H, W)
        x = self.norm(self.act(self.dwconv(x) + x))
        return self.project(x)  # -> (B, C, H, W)


class CMTBlock(nn.Module):
    """CMT block, Eq. (7)-(9): LPU, then ``+ LMHSA(LN(.))``, then ``+ IRFFN(LN(.))``. Takes and returns a
    (B, C, H, W) map, so it is an injection site; ``bias`` is the stage's B resized to this map.

    Example:
        >>> CMTBlock(16, 2, 3.6, sr_ratio=2)(torch.randn(1, 16, 4, 4), torch.zeros(2, 16, 4)).shape
        torch.Size([1, 16, 4, 4])
    """

    def __init__(self, dim: int, num_heads: int, ffn_ratio: float, sr_ratio: int, drop_path: float = 0.0) -> None:
        super().__init__()
        self.lpu = LocalPerceptionUnit(dim)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = LightweightAttention(dim, num_heads, sr_ratio)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.ffn = InvertedResidualFFN(dim, ffn_ratio)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[2], x.shape[3]
        x = self.lpu(x)  # Y, Eq. (7)
        tokens = rearrange(x, "b c h w -> b (h w) c")
        tokens = tokens + self.drop_path(self.attn(self.norm1(tokens), height, width, bias))  # Z, Eq. (8)
        ffn_in = rearrange(self.norm2(tokens), "b (h w) c -> b c h w", h=height, w=width)
        x = rearrange(tokens, "b (h w) c -> b c h w", h=height, w=width)
        return x + self.drop_path(self.ffn(ffn_in))  # Eq. (9)


class CMTStage(nn.Module):
    """Patch embedding (2x2 conv, stride 2, LayerNorm), the stage's relative position bias B
    (heads, grid^2, (grid / sr_ratio)^2), and ``depth`` CMT blocks sharing it. Maps to maps.

    Example:
        >>> CMTStage(8, 16, depth=1, num_heads=2, ffn_ratio=3.6, sr_ratio=2, grid=4)(torch.randn(1, 8, 8, 8)).shape
        torch.Size([1, 16, 4, 4])
    """

    def __init__(self, in_channels: int, dim: int, depth: int, num_heads: int, ffn_ratio: float, sr_ratio: int,
                 grid: int, drop_path: Sequence[float] = ()) -> None:
        super().__init__()
        check_int("sr_ratio", sr_ratio)
        if grid % sr_ratio:
            raise ValueError(f"sr_ratio must divide the stage grid {grid}, got sr_ratio={sr_ratio}")
        self.patch_embed = PatchEmbed(in_channels, dim, 2, norm_layer=LayerNorm2d)  # 2x2 stride-2 conv + LayerNorm
        self.sr_ratio = sr_ratio
        self.query_grid = (grid, grid)
        self.key_grid = (grid // sr_ratio, grid // sr_ratio)
        self.relative_pos = nn.Parameter(torch.randn(num_heads, grid * grid, (grid // sr_ratio) ** 2))
        rates = list(drop_path) or [0.0] * depth
        self.blocks = nn.ModuleList([CMTBlock(dim, num_heads, ffn_ratio, sr_ratio, rates[i]) for i in range(depth)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)  # (B, C, h, w)
        height, width = x.shape[2], x.shape[3]
        # the reduction conv (kernel = stride = k, no padding) gives a floor(h / k) x floor(w / k) key grid
        key_size = (height // self.sr_ratio, width // self.sr_ratio)
        bias = resize_relative_position_bias(self.relative_pos, self.query_grid, self.key_grid,
                                             (height, width), key_size)
        for block in self.blocks:
            x = block(x, bias)
        return x


class CMT(ImageBackbone):
    """CMT: stem, four CMT stages, 1x1 conv to ``fc_dim`` + BN + Swish, average pooling, dropout, classifier.

    Example:
        >>> model = CMT(img_size=64, dims=(8, 16, 24, 32), depths=(1, 1, 1, 1), fc_dim=40, num_classes=5)
        >>> model(torch.randn(2, 3, 64, 64)).shape
        torch.Size([2, 5])
        >>> model.forward_features(torch.randn(2, 3, 64, 64)).shape
        torch.Size([2, 40, 2, 2])
    """

    default_input_size = 160

    def __init__(
        self,
        img_size: int = 160,
        dims: Sequence[int] = (46, 92, 184, 368),
        depths: Sequence[int] = (2, 2, 10, 2),
        heads: Sequence[int] = (1, 2, 4, 8),
        ffn_ratios: Sequence[float] = (3.6, 3.6, 3.6, 3.6),
        sr_ratios: Sequence[int] = (8, 4, 2, 1),
        stem_channels: int = 16,
        fc_dim: int = 1280,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.1,
        drop_path_rate: float = 0.1,
    ) -> None:
        super().__init__()
        self.in_chans = in_chans
        for name, value in (("img_size", img_size), ("in_chans", in_chans), ("stem_channels", stem_channels),
                            ("fc_dim", fc_dim)):
            check_int(name, value)
        check_int("num_classes", num_classes, minimum=0)
        check_rate("drop_rate", drop_rate)
        check_rate("drop_path_rate", drop_path_rate)
        check_per_stage(4, dims=dims, depths=depths, heads=heads, ffn_ratios=ffn_ratios, sr_ratios=sr_ratios)
        if img_size % 32:
            raise ValueError(f"img_size must be a multiple of 32 (total stride), got {img_size}")
        for depth in depths:
            check_int("depths", depth)
        self.num_classes = num_classes
        self.default_input_size = img_size
        self.num_features = fc_dim
        rates = linear_drop_path_rates(drop_path_rate, sum(depths))

        self.stem = CMTStem(in_chans, stem_channels)
        stages, start, grid, in_channels = [], 0, img_size // 2, stem_channels
        for i in range(4):
            grid //= 2
            stages.append(CMTStage(in_channels, dims[i], depths[i], heads[i], ffn_ratios[i], sr_ratios[i], grid,
                                   rates[start:start + depths[i]]))
            start += depths[i]
            in_channels = dims[i]
        self.stages = nn.Sequential(*stages)
        self.head_conv = ConvNormAct(dims[-1], fc_dim, 1, act="silu", bias=True)  # Swish = SiLU
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(fc_dim, num_classes) if num_classes > 0 else nn.Identity()
        self._init_weights()

    def _init_weights(self) -> None:
        """The official init: trunc-normal Linear, Kaiming fan_out convs, zero biases, norms 1 / 0."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
            elif isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, (nn.LayerNorm, nn.BatchNorm2d)):
                nn.init.ones_(m.weight)
            if isinstance(m, (nn.Linear, nn.Conv2d, nn.LayerNorm, nn.BatchNorm2d)) and m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_chans, H, W) -> the projected map (B, fc_dim, H/32, W/32), before pooling."""
        x = self.stages(self.stem(x))  # (B, dims[-1], H/32, W/32)
        return self.head_conv(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.forward_features(x)).flatten(1)  # (B, fc_dim)
        return self.head(self.head_drop(x))


@register_backbone("cmt_ti", family="vit", aliases=("cmt_tiny",), venue="CVPR", year=2022, params=9_500_000,
                   paper="Guo, Han, Wu, Tang, Chen, Wang, Xu: CMT: Convolutional Neural Networks Meet Vision "
                         "Transformers")
def cmt_ti(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> CMT:
    """CMT-Ti (Table 1): 160 x 160 input, C = (46, 92, 184, 368), blocks (2, 2, 10, 2), R = 3.6
    (paper: 9.5M parameters; measured 9,492,426).

    Example:
        >>> cmt_ti().default_input_size
        160
    """
    return CMT(num_classes=num_classes, in_chans=in_chans, **kwargs)
