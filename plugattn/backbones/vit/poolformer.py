"""PoolFormer-S12 (MetaFormer with a pooling token mixer).

Paper: Weihao Yu, Mi Luo, Pan Zhou, Chenyang Si, Yichen Zhou, Xinchao Wang, Jiashi Feng, Shuicheng Yan,
"MetaFormer Is Actually What You Need for Vision", CVPR 2022. Section 3.1, Eq. (1)-(4) and Table 1:

* MetaFormer block on (B, C, H, W) maps (channels first throughout):
  Y = X + LS1 * TokenMixer(Norm(X));  Z = Y + LS2 * Conv1x1(GELU(Conv1x1(Norm(Y))))  (MLP ratio 4),
  Norm = GroupNorm with one group (statistics over C, H, W), layer scales LS initialised to 1e-5;
* the token mixer is Eq. (4): T' = AvgPool_{3x3, stride 1}(T) - T, the average ignoring the zero padding
  (``count_include_pad=False``) -- "- T" because the block adds the input back;
* patch embedding 7 x 7 conv, stride 4, padding 2; between stages a 3 x 3 conv, stride 2, padding 1;
* S12: channels (64, 128, 320, 512), blocks (2, 2, 6, 2); a final norm, global average pool, linear head.

Every size works (pooling is 3 x 3, stride 1; nothing depends on the resolution).

Head: the official code (sail-sg/poolformer) applies the final GroupNorm to the map and then averages
(``head_norm="before_pool"``, the default here). timm's ``poolformer_s12`` (rewritten as a generic
MetaFormer) averages first and applies a channel LayerNorm (eps 1e-6) to the pooled vector: same
parameters, different output; ``head_norm="after_pool"`` reproduces timm exactly, used in the weight
test. Parameter names are timm's (``stem.conv``, ``stages.i.downsample.conv``,
``stages.i.blocks.j.norm1/layer_scale1.scale/mlp.fc1``...), except the head, which
:meth:`PoolFormer.convert_external_state_dict` renames (``head.norm`` -> ``norm``, ``head.fc`` -> ``head``).
Init as the official code and timm: truncated normal (std 0.02) for conv/linear weights, zero biases.

Reference parameter count (1000 classes): 11,915,176 -- timm's ``poolformer_s12``, re-measured by
building it here (the paper's Table 2 rounds it to 12M).

Injection sites: everything is a (B, C, H, W) map -- :class:`Stem`, every :class:`Downsampling`,
every :class:`PoolFormerBlock` (e.g. ``after="PoolFormerBlock"``: 12 sites in S12),
:class:`~plugattn.backbones.layers.Pooling`.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Sequence

import torch
import torch.nn as nn

from ..._validate import check_choice, check_int
from ..layers import (
    ConvMlp, DropPath, ImageBackbone, Pooling, check_rate, init_trunc_normal_, linear_drop_path_rates,
)
from ..registry import register_backbone
from ..weights import remap_keys

__all__ = ["LayerScale2d", "PoolFormerBlock", "Stem", "Downsampling", "PoolFormer", "poolformer_s12"]

HEAD_NORMS = ("before_pool", "after_pool")


class LayerScale2d(nn.Module):
    """Learnable per-channel scale of a (B, C, H, W) map (parameter ``scale`` of shape (C,)).

    Example:
        >>> LayerScale2d(3, 0.5)(torch.ones(1, 3, 2, 2)).mean().item()
        0.5
    """

    def __init__(self, dim: int, init_value: float = 1e-5) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.full((dim,), float(init_value)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale.view(-1, 1, 1)  # (C,) -> (C, 1, 1) broadcast over H, W


class PoolFormerBlock(nn.Module):
    """MetaFormer block with pooling mixer: (B, C, H, W) -> (B, C, H, W).

    Example:
        >>> PoolFormerBlock(16)(torch.randn(2, 16, 7, 7)).shape
        torch.Size([2, 16, 7, 7])
    """

    def __init__(self, dim: int, pool_size: int = 3, mlp_ratio: float = 4.0, drop_path: float = 0.0,
                 layer_scale_init: float = 1e-5) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(1, dim)
        self.token_mixer = Pooling(pool_size)
        self.layer_scale1 = LayerScale2d(dim, layer_scale_init)
        self.norm2 = nn.GroupNorm(1, dim)
        self.mlp = ConvMlp(dim, int(dim * mlp_ratio))
        self.layer_scale2 = LayerScale2d(dim, layer_scale_init)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.layer_scale1(self.token_mixer(self.norm1(x))))
        return x + self.drop_path(self.layer_scale2(self.mlp(self.norm2(x))))


class Stem(nn.Module):
    """Patch embedding: 7 x 7 conv, stride 4, padding 2.

    Example:
        >>> Stem(3, 64)(torch.randn(1, 3, 224, 224)).shape
        torch.Size([1, 64, 56, 56])
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=7, stride=4, padding=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Downsampling(nn.Module):
    """Between stages: 3 x 3 conv, stride 2, padding 1.

    Example:
        >>> Downsampling(64, 128)(torch.randn(1, 64, 56, 56)).shape
        torch.Size([1, 128, 28, 28])
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class PoolFormerStage(nn.Module):
    """Optional downsampling, then PoolFormer blocks.

    Example:
        >>> PoolFormerStage(8, 16, depth=1)(torch.randn(1, 8, 8, 8)).shape
        torch.Size([1, 16, 4, 4])
    """

    def __init__(self, in_channels: int, out_channels: int, depth: int, drop_path: Sequence[float] = (),
                 layer_scale_init: float = 1e-5) -> None:
        super().__init__()
        self.downsample = Downsampling(in_channels, out_channels) if in_channels != out_channels else nn.Identity()
        rates = list(drop_path) or [0.0] * depth
        self.blocks = nn.Sequential(*[
            PoolFormerBlock(out_channels, drop_path=rates[i], layer_scale_init=layer_scale_init) for i in range(depth)
        ])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


class PoolFormer(ImageBackbone):
    """PoolFormer: stem, four stages of pooling MetaFormer blocks, norm, average pool, linear head.

    Example:
        >>> model = PoolFormer(depths=(1, 1, 1, 1), dims=(8, 16, 24, 32), num_classes=5)
        >>> model(torch.randn(2, 3, 64, 64)).shape
        torch.Size([2, 5])
        >>> model.forward_features(torch.randn(2, 3, 64, 64)).shape
        torch.Size([2, 32, 2, 2])
    """

    default_input_size = 224

    def __init__(
        self,
        depths: Sequence[int] = (2, 2, 6, 2),
        dims: Sequence[int] = (64, 128, 320, 512),
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_path_rate: float = 0.0,
        layer_scale_init: float = 1e-5,
        head_norm: str = "before_pool",
    ) -> None:
        super().__init__()
        self.in_chans = in_chans
        check_int("num_classes", num_classes, minimum=0)
        check_int("in_chans", in_chans)
        check_rate("drop_path_rate", drop_path_rate)
        self.head_norm = check_choice("head_norm", head_norm, HEAD_NORMS)
        if len(depths) != len(dims) or not depths:
            raise ValueError(f"depths and dims need one entry per stage, got depths={list(depths)}, dims={list(dims)}")
        for name, values in (("depths", depths), ("dims", dims)):
            for value in values:
                check_int(name, value)
        self.num_classes = num_classes
        self.num_features = dims[-1]

        self.stem = Stem(in_chans, dims[0])
        # stochastic depth grows linearly from 0 (first block) to drop_path_rate (last), as the official code
        total = sum(depths)
        rates = linear_drop_path_rates(drop_path_rate, total)
        stages: List[nn.Module] = []
        start = 0
        for i, (depth, dim) in enumerate(zip(depths, dims)):
            stages.append(PoolFormerStage(dims[i - 1] if i else dim, dim, depth, rates[start:start + depth],
                                          layer_scale_init))
            start += depth
        self.stages = nn.Sequential(*stages)
        if head_norm == "before_pool":
            self.norm: nn.Module = nn.GroupNorm(1, dims[-1])
        else:
            self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        self.head = nn.Linear(dims[-1], num_classes) if num_classes > 0 else nn.Identity()

        init_trunc_normal_(self, (nn.Conv2d, nn.Linear))  # truncated normal (std 0.02), zero bias

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_chans, H, W) -> (B, dims[-1], H/32, W/32) (before the final norm)."""
        return self.stages(self.stem(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.forward_features(x)
        if self.head_norm == "before_pool":
            x = self.norm(x).mean(dim=(2, 3))  # GroupNorm on the map, then average -> (B, C)
        else:
            x = self.norm(x.mean(dim=(2, 3)))  # average, then LayerNorm over C -> (B, C)
        return self.head(x)

    def convert_external_state_dict(self, state_dict: Mapping[str, torch.Tensor], source: str) -> Dict[str, torch.Tensor]:
        """timm's head names (``head.norm``, ``head.fc``) become ours (``norm``, ``head``)."""
        if source != "timm":
            return dict(state_dict)
        return remap_keys(state_dict, [(r"^head\.norm\.", "norm."), (r"^head\.fc\.", "head.")])


@register_backbone("poolformer_s12", family="vit", venue="CVPR", year=2022, params=11_915_176,
                   paper="Yu, Luo, Zhou, Si, Zhou, Wang, Feng, Yan: MetaFormer Is Actually What You Need for Vision")
def poolformer_s12(num_classes: int = 1000, in_chans: int = 3, drop_path_rate: float = 0.1,
                   **kwargs: Any) -> PoolFormer:
    """PoolFormer-S12: dims (64, 128, 320, 512), depths (2, 2, 6, 2) (timm: 11,915,176 parameters).
    ``drop_path_rate`` 0.1: the official README's ImageNet training command for S12.

    Example:
        >>> len(poolformer_s12().stages[2].blocks)
        6
    """
    return PoolFormer((2, 2, 6, 2), (64, 128, 320, 512), num_classes=num_classes, in_chans=in_chans,
                      drop_path_rate=drop_path_rate, **kwargs)
