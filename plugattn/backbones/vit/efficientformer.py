"""EfficientFormer-L1.

Paper: Yanyu Li, Geng Yuan, Yang Wen, Ju Hu, Georgios Evangelidis, Sergey Tulyakov, Yanzhi Wang, Jian Ren,
"EfficientFormer: Vision Transformers at MobileNet Speed", NeurIPS 2022. Sec. 4 / Fig. 3 and Eq. (1)-(5):

* stem: two 3x3 stride-2 convs, each BN + ReLU (Eq. 1);
* Meta4D block on (B, C, H, W) (Eq. 3): ``x = x + ls1 * (Pool(x) - x)`` (3x3 average pool, stride 1,
  padding not counted) then ``x = x + ls2 * BN(Conv1x1(GELU(BN(Conv1x1(x)))))``;
* between stages a 3x3 stride-2 conv + BN (Eq. 2: the embedding);
* the last stage switches to tokens (flatten) for its last ``num_vit`` blocks, the Meta3D blocks
  (Eq. 4): ``x = x + ls1 * MHSA(LN(x))``, ``x = x + ls2 * Linear(GELU(Linear(LN(x))))``; MHSA has
  8 heads, query/key width 32, value width 4 x 32, and a learned per-head bias ``b`` over relative
  positions added to the logits: softmax(Q K^T / sqrt(32) + b) V (Eq. 5, LeViT-style);
* final LayerNorm, global average over tokens, a classifier and the distillation classifier, averaged
  at inference (DeiT-style hard distillation, as the paper trains).
* L1: widths (48, 96, 224, 448), depths (3, 2, 6, 4), one Meta3D block (Table 1 / official code),
  MLP ratio 4, layer-scale init 1e-5.

The attention bias: the paper learns it at the 224 x 224 resolution, where the Meta3D grid is 7 x 7,
indexed by the absolute row and column offsets (|dy|, |dx|) between two tokens. At another input size
the grid is H/32 x W/32: offsets inside the 7 x 7 table are read from it exactly; for larger grids the
(|dy|, |dx|) table is resized bicubically to the needed offsets (as timm resizes relative-position
tables when fine-tuning at a higher resolution). The index is built in a ``torch.fx.wrap``-ed function,
so the model traces and runs at any size divisible by 32 (the default is 224).

Module names are timm's (``stem.conv1``, ``stages.i.downsample``, ``stages.i.blocks.j.token_mixer``,
``ls1.gamma``, ``head_dist``), so timm's ``efficientformer_l1`` state_dict loads; its precomputed
``attention_bias_idxs`` buffer is dropped (ours is computed for the input's grid).

Reference parameter count: timm ``efficientformer_l1`` 12,289,928 (1000 classes, both heads;
measured by building it with random weights; the paper's Table 2 lists 12.3M).

Injection sites (modules producing (B, C, H, W) maps): :class:`Meta4D` (14 blocks: 3 + 2 + 6 + 3),
:class:`Downsample` and the stem. :class:`Meta3D` and :class:`Flat` produce tokens (B, N, C) and are
refused by the injector with its "(B, C, H, W) feature map" error.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Sequence

import torch
import torch.fx
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from ..._validate import check_int
from ..layers import (
    ConvMlp, DropPath, ImageBackbone, Mlp, Pooling, check_probability, init_trunc_normal_, linear_drop_path_rates,
)
from ..registry import register_backbone

__all__ = [
    "LayerScale",
    "Meta4D",
    "Flat",
    "RelativePositionAttention",
    "Meta3D",
    "Downsample",
    "EfficientFormer",
    "relative_offset_bias",
    "efficientformer_l1",
]

torch.fx.wrap("rearrange")


class LayerScale(nn.Module):
    """Learnable per-channel scale ``gamma`` (init ``init_value``) on the last dimension, or on dim 1
    of a (B, C, H, W) map when ``channels_first``.

    Example:
        >>> LayerScale(4, 0.5)(torch.ones(2, 3, 4)).sum().item()
        12.0
    """

    def __init__(self, dim: int, init_value: float = 1e-5, channels_first: bool = False) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init_value)))
        self.channels_first = channels_first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_first:
            return x * self.gamma.reshape(-1, 1, 1)  # (C,) -> (C, 1, 1) broadcast over H, W
        return x * self.gamma


class Meta4D(nn.Module):
    """Meta4D block (Eq. 3) on (B, C, H, W): pooling token mixer and conv MLP, each layer-scaled residual.

    Example:
        >>> Meta4D(16)(torch.randn(2, 16, 8, 8)).shape
        torch.Size([2, 16, 8, 8])
    """

    def __init__(self, dim: int, mlp_ratio: float = 4.0, layer_scale: float = 1e-5, drop_path: float = 0.0) -> None:
        super().__init__()
        self.token_mixer = Pooling(3)  # PoolFormer's token mixer, which Meta4D reuses (Eq. 3)
        self.ls1 = LayerScale(dim, layer_scale, channels_first=True)
        self.mlp = ConvMlp(dim, int(dim * mlp_ratio), norm_layer=nn.BatchNorm2d)  # BN after each conv
        self.ls2 = LayerScale(dim, layer_scale, channels_first=True)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.ls1(self.token_mixer(x)))
        return x + self.drop_path(self.ls2(self.mlp(x)))


class Flat(nn.Module):
    """(B, C, H, W) -> (B, H*W, C) tokens, where the last stage switches from Meta4D to Meta3D.

    Example:
        >>> Flat()(torch.randn(2, 8, 3, 4)).shape
        torch.Size([2, 12, 8])
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(2).transpose(1, 2)


@torch.fx.wrap
def relative_offset_bias(table: torch.Tensor, resolution: int, height: int, width: int) -> torch.Tensor:
    """Attention bias (heads, H*W, H*W) from a per-head table over offsets (|dy|, |dx|) learned on a
    ``resolution`` x ``resolution`` grid (``table`` is (heads, resolution**2), row-major in (|dy|, |dx|)).

    Offsets the table covers are read exactly; a larger grid resizes the offset table bicubically.

    Example:
        >>> relative_offset_bias(torch.arange(4.0).reshape(1, 4), 2, 2, 2)[0, 0]
        tensor([0., 1., 2., 3.])
    """
    heads = table.shape[0]
    grid = table.reshape(heads, resolution, resolution)  # (heads, |dy|, |dx|)
    need_h, need_w = max(height, resolution), max(width, resolution)
    if (need_h, need_w) != (resolution, resolution):
        grid = F.interpolate(grid.unsqueeze(0), size=(need_h, need_w), mode="bicubic", align_corners=False).squeeze(0)
    rows = torch.arange(height, device=table.device)
    cols = torch.arange(width, device=table.device)
    pos_y = rows.repeat_interleave(width)  # token index -> row, (H*W,)
    pos_x = cols.repeat(height)  # token index -> column, (H*W,)
    dy = (pos_y[:, None] - pos_y[None, :]).abs()  # (H*W, H*W)
    dx = (pos_x[:, None] - pos_x[None, :]).abs()
    return grid[:, dy, dx]  # (heads, H*W, H*W)


class RelativePositionAttention(nn.Module):
    """EfficientFormer MHSA (Eq. 5): ``softmax(Q K^T / sqrt(key_dim) + b) V`` with value width
    ``attn_ratio * key_dim`` per head and a learned per-head relative-position bias ``b``.

    ``forward(x, height, width)`` takes the token grid size so the bias matches the input.

    Example:
        >>> attn = RelativePositionAttention(16, key_dim=4, num_heads=2, resolution=3)
        >>> attn(torch.randn(2, 9, 16), 3, 3).shape
        torch.Size([2, 9, 16])
    """

    def __init__(self, dim: int, key_dim: int = 32, num_heads: int = 8, attn_ratio: int = 4, resolution: int = 7) -> None:
        super().__init__()
        for name, value in (("dim", dim), ("key_dim", key_dim), ("num_heads", num_heads),
                            ("attn_ratio", attn_ratio), ("resolution", resolution)):
            check_int(name, value)
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.val_dim = attn_ratio * key_dim
        self.resolution = resolution
        self.qkv = nn.Linear(dim, num_heads * (2 * key_dim + self.val_dim))
        self.proj = nn.Linear(num_heads * self.val_dim, dim)
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, resolution * resolution))

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        qkv = rearrange(self.qkv(x), "b n (h d) -> b h n d", h=self.num_heads)  # (B, heads, N, 2k + v)
        q, k, v = qkv.split([self.key_dim, self.key_dim, self.val_dim], dim=3)
        bias = relative_offset_bias(self.attention_biases, self.resolution, height, width)  # (heads, N, N)
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype))  # (B, heads, N, v)
        return self.proj(rearrange(x, "b h n d -> b n (h d)"))


class Meta3D(nn.Module):
    """Meta3D block (Eq. 4) on (B, N, C) tokens: ``x + ls1 * MHSA(LN(x))``, ``x + ls2 * MLP(LN(x))``.

    ``forward(x, height, width)``: the token grid size (for the attention bias).

    Example:
        >>> Meta3D(16, key_dim=4, num_heads=2, resolution=2)(torch.randn(2, 4, 16), 2, 2).shape
        torch.Size([2, 4, 16])
    """

    def __init__(self, dim: int, mlp_ratio: float = 4.0, layer_scale: float = 1e-5, drop_path: float = 0.0,
                 key_dim: int = 32, num_heads: int = 8, resolution: int = 7) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.token_mixer = RelativePositionAttention(dim, key_dim, num_heads, 4, resolution)
        self.ls1 = LayerScale(dim, layer_scale)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act="gelu")
        self.ls2 = LayerScale(dim, layer_scale)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        x = x + self.drop_path(self.ls1(self.token_mixer(self.norm1(x), height, width)))
        return x + self.drop_path(self.ls2(self.mlp(self.norm2(x))))


class Downsample(nn.Module):
    """Embedding between stages (Eq. 2): 3x3 stride-2 conv + BN, (B, C, H, W) -> (B, C', H/2, W/2).

    Example:
        >>> Downsample(8, 16)(torch.randn(1, 8, 8, 8)).shape
        torch.Size([1, 16, 4, 4])
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1)
        self.norm = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(x))


class EfficientFormerStage(nn.Module):
    """One stage: optional :class:`Downsample`, Meta4D blocks, and (last stage) :class:`Flat` + Meta3D blocks.

    Example:
        >>> stage = EfficientFormerStage(8, 16, depth=2, downsample=True, num_vit=1, drop_path=[0.0, 0.0],
        ...                              key_dim=4, num_heads=2, resolution=2)
        >>> stage(torch.randn(1, 8, 4, 4)).shape
        torch.Size([1, 4, 16])
    """

    def __init__(self, in_dim: int, dim: int, depth: int, downsample: bool, num_vit: int, drop_path: Sequence[float],
                 mlp_ratio: float = 4.0, layer_scale: float = 1e-5, **attention_kwargs: Any) -> None:
        super().__init__()
        self.downsample = Downsample(in_dim, dim) if downsample else nn.Identity()
        num_4d = depth - num_vit
        blocks: List[nn.Module] = [Meta4D(dim, mlp_ratio, layer_scale, drop_path[i]) for i in range(num_4d)]
        self.has_tokens = num_vit > 0
        if self.has_tokens:
            blocks.append(Flat())
            blocks += [Meta3D(dim, mlp_ratio, layer_scale, drop_path[i], **attention_kwargs) for i in range(num_4d, depth)]
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.downsample(x)
        height, width = x.shape[2], x.shape[3]
        for block in self.blocks:
            if isinstance(block, Meta3D):  # a Python type test on modules, fixed at trace time
                x = block(x, height, width)
            else:
                x = block(x)
        return x


class EfficientFormer(ImageBackbone):
    """EfficientFormer (Li et al., NeurIPS 2022): stem, four stages (Meta4D, last stage ending in Meta3D),
    LayerNorm, token average, classifier and distillation classifier averaged.

    Example:
        >>> model = EfficientFormer(depths=(1, 1, 1, 2), dims=(8, 16, 24, 32), num_classes=3)
        >>> model(torch.randn(1, 3, 64, 64)).shape
        torch.Size([1, 3])
    """

    default_input_size = 224

    def __init__(self, depths: Sequence[int] = (3, 2, 6, 4), dims: Sequence[int] = (48, 96, 224, 448),
                 num_vit: int = 1, num_classes: int = 1000, in_chans: int = 3, mlp_ratio: float = 4.0,
                 layer_scale: float = 1e-5, drop_path_rate: float = 0.0, resolution: int = 7) -> None:
        super().__init__()
        self.in_chans = in_chans
        check_int("num_classes", num_classes, minimum=0)
        check_int("in_chans", in_chans)
        check_int("num_vit", num_vit, minimum=0)
        check_probability("drop_path_rate", drop_path_rate)
        if len(depths) != 4 or len(dims) != 4:
            raise ValueError(f"depths and dims must have 4 entries each, got depths={list(depths)!r}, dims={list(dims)!r}")
        if num_vit > depths[-1]:
            raise ValueError(f"num_vit must be <= depths[-1]={depths[-1]}, got {num_vit}")
        self.num_classes = num_classes
        self.num_features = dims[-1]
        self.stem = nn.Sequential()
        self.stem.add_module("conv1", nn.Conv2d(in_chans, dims[0] // 2, 3, stride=2, padding=1))
        self.stem.add_module("norm1", nn.BatchNorm2d(dims[0] // 2))
        self.stem.add_module("act1", nn.ReLU())
        self.stem.add_module("conv2", nn.Conv2d(dims[0] // 2, dims[0], 3, stride=2, padding=1))
        self.stem.add_module("norm2", nn.BatchNorm2d(dims[0]))
        self.stem.add_module("act2", nn.ReLU())
        rates = linear_drop_path_rates(drop_path_rate, sum(depths))
        stages, start, in_dim = [], 0, dims[0]
        for index, (depth, dim) in enumerate(zip(depths, dims)):
            last = index == len(depths) - 1
            stages.append(EfficientFormerStage(
                in_dim, dim, depth, downsample=index > 0, num_vit=num_vit if last else 0,
                drop_path=rates[start:start + depth], mlp_ratio=mlp_ratio, layer_scale=layer_scale,
                resolution=resolution,
            ))
            start += depth
            in_dim = dim
        self.stages = nn.Sequential(*stages)
        self.ends_in_tokens = num_vit > 0
        self.norm = nn.LayerNorm(dims[-1])
        self.head = nn.Linear(dims[-1], num_classes) if num_classes > 0 else nn.Identity()
        self.head_dist = nn.Linear(dims[-1], num_classes) if num_classes > 0 else nn.Identity()
        init_trunc_normal_(self)  # official init: truncated normal (std 0.02) linears, zero bias

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_chans, H, W) -> normalised tokens (B, H/32 * W/32, 448)."""
        x = self.stages(self.stem(x))
        if not self.ends_in_tokens:
            x = x.flatten(2).transpose(1, 2)  # (B, C, H, W) -> (B, HW, C)
        return self.norm(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.forward_features(x).mean(dim=1)  # average over tokens -> (B, C)
        return (self.head(x) + self.head_dist(x)) / 2  # classifier and distillation classifier, averaged

    def convert_external_state_dict(self, state_dict: Mapping[str, torch.Tensor], source: str) -> Dict[str, torch.Tensor]:
        """timm keys are ours; its precomputed ``attention_bias_idxs`` (fixed 7 x 7 grid) is dropped."""
        return {k: v for k, v in state_dict.items() if not k.endswith("attention_bias_idxs")}


@register_backbone(
    "efficientformer_l1",
    family="vit",
    paper="Li, Yuan, Wen, Hu, Evangelidis, Tulyakov, Wang, Ren: EfficientFormer: Vision Transformers at MobileNet Speed",
    venue="NeurIPS",
    year=2022,
    params=12_289_928,
)
def efficientformer_l1(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> EfficientFormer:
    """EfficientFormer-L1 (timm ``efficientformer_l1``: 12,289,928 parameters).

    Example:
        >>> efficientformer_l1(num_classes=0)(torch.randn(1, 3, 64, 64)).shape
        torch.Size([1, 448])
    """
    return EfficientFormer(num_classes=num_classes, in_chans=in_chans, **kwargs)
