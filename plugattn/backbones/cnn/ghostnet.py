"""GhostNet 1.0x.

Paper: Kai Han, Yunhe Wang, Qi Tian, Jianyuan Guo, Chunjing Xu, Chang Xu, "GhostNet: More Features
from Cheap Operations", CVPR 2020.

Ghost module (Sec. 3.1, Eq. 2-3): a primary 1x1 conv produces ``m = ceil(n / s)`` intrinsic maps
``Y' = X * f'`` (ratio s = 2), cheap 3x3 depthwise "linear operations" produce ``m (s - 1)`` ghost
maps ``y_ij = Phi_ij(y'_i)``; their concatenation (cut to n channels) is the output. Ghost
bottleneck (Fig. 3): Ghost module (ReLU) expanding to the "#exp" width, a 3x3/5x5 depthwise conv of
stride 2 in the down-sampling blocks, optional SE, Ghost module (linear) projecting to "#out"; the
shortcut is the identity, or depthwise + pointwise convs when the shape changes. Table 1 lists the
16 bottlenecks (kernel, #exp, #out, SE, stride), the 3x3 stride-2 stem to 16, the final 1x1 conv to
960, pooling, a 1x1 conv to 1280 with ReLU, dropout 0.2 and the classifier. Widths are rounded to
multiples of 4.

Built-in SE: :class:`plugattn.attention.se.SELayer` with ``hidden_channels=make_divisible(C/4, 4)``,
ReLU and the hard-sigmoid gate ``relu6(x + 3) / 6`` (= ``nn.Hardsigmoid``) as the official code and timm.

Module names follow timm's ``ghostnet_100`` (``conv_stem``, ``blocks.S.B.ghost1.primary_conv`` ...);
its SE (``se.conv_reduce`` / ``se.conv_expand``) and last ``ConvBnAct`` (``conv`` / ``bn1``) are
renamed by ``convert_external_state_dict``. Reference count: timm ``ghostnet_100`` has 5,182,508
parameters (1000 classes, measured by building it with random weights; the paper's Table 7 rounds
GhostNet 1.0x to 5.2M). Init is PyTorch's default, as in timm and the official code.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, NamedTuple

import torch
import torch.nn as nn

from ..._validate import check_int
from ...attention.se import SELayer
from ..layers import ConvNormAct, ImageBackbone, check_common_args, make_divisible
from ..weights import remap_keys
from ..registry import register_backbone

__all__ = ["GhostModule", "GhostBottleneck", "GhostNet", "ghostnet_100"]


class GhostModule(nn.Module):
    """Ghost module (Eq. 2-3): intrinsic maps from a 1x1 conv, ghost maps from a cheap depthwise conv.

    Example:
        >>> GhostModule(16, 24)(torch.randn(2, 16, 8, 8)).shape
        torch.Size([2, 24, 8, 8])
    """

    def __init__(self, in_channels: int, out_channels: int, ratio: int = 2, dw_size: int = 3, use_act: bool = True) -> None:
        super().__init__()
        check_int("in_channels", in_channels)
        self.out_channels = check_int("out_channels", out_channels)
        check_int("ratio", ratio, minimum=2)
        check_int("dw_size", dw_size)
        intrinsic = math.ceil(out_channels / ratio)
        ghosts = intrinsic * (ratio - 1)
        act = "relu" if use_act else None
        self.primary_conv = ConvNormAct(in_channels, intrinsic, 1, act=act)
        self.cheap_operation = ConvNormAct(intrinsic, ghosts, dw_size, groups=intrinsic, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        intrinsic = self.primary_conv(x)  # (B, C_in, H, W) -> (B, m, H, W)
        ghosts = self.cheap_operation(intrinsic)  # (B, m, H, W) -> (B, m (s - 1), H, W)
        out = torch.cat([intrinsic, ghosts], dim=1)
        return out[:, : self.out_channels]  # keep exactly n channels when n is not a multiple of s


class GhostBottleneck(nn.Module):
    """Ghost bottleneck (Fig. 3) with optional hard-sigmoid SE.

    Example:
        >>> GhostBottleneck(16, 48, 24, kernel_size=3, stride=2)(torch.randn(2, 16, 8, 8)).shape
        torch.Size([2, 24, 4, 4])
    """

    def __init__(
        self,
        in_channels: int,
        mid_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        se_ratio: float = 0.0,
    ) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride!r}")
        if not isinstance(se_ratio, (int, float)) or not 0.0 <= se_ratio <= 1.0:
            raise ValueError(f"se_ratio must be a number in [0, 1], got {se_ratio!r}")
        self.ghost1 = GhostModule(in_channels, mid_channels, use_act=True)  # (B, C_in, H, W) -> (B, C_mid, H, W)
        self.has_dw = stride > 1
        if self.has_dw:
            padding = (kernel_size - 1) // 2
            self.conv_dw = nn.Conv2d(mid_channels, mid_channels, kernel_size, stride, padding, groups=mid_channels, bias=False)
            self.bn_dw = nn.BatchNorm2d(mid_channels)
        self.has_se = se_ratio > 0
        if self.has_se:
            hidden = make_divisible(mid_channels * se_ratio, 4)
            self.se = SELayer(mid_channels, hidden_channels=hidden, act="relu", gate="hardsigmoid")
        self.ghost2 = GhostModule(mid_channels, out_channels, use_act=False)  # -> (B, C_out, H/s, W/s)
        if in_channels == out_channels and stride == 1:
            self.shortcut = nn.Sequential()
        else:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, in_channels, kernel_size, stride, (kernel_size - 1) // 2, groups=in_channels, bias=False),
                nn.BatchNorm2d(in_channels),
                nn.Conv2d(in_channels, out_channels, 1, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.ghost1(x)
        if self.has_dw:
            out = self.bn_dw(self.conv_dw(out))
        if self.has_se:
            out = self.se(out)
        out = self.ghost2(out)
        return out + self.shortcut(x)


class GhostConfig(NamedTuple):
    """One row of Table 1."""

    kernel_size: int
    expanded_channels: int
    out_channels: int
    se_ratio: float
    stride: int


# Table 1, grouped into stages as the official code / timm
GHOSTNET_STAGES = [
    [GhostConfig(3, 16, 16, 0, 1)],
    [GhostConfig(3, 48, 24, 0, 2)],
    [GhostConfig(3, 72, 24, 0, 1)],
    [GhostConfig(5, 72, 40, 0.25, 2)],
    [GhostConfig(5, 120, 40, 0.25, 1)],
    [GhostConfig(3, 240, 80, 0, 2)],
    [
        GhostConfig(3, 200, 80, 0, 1),
        GhostConfig(3, 184, 80, 0, 1),
        GhostConfig(3, 184, 80, 0, 1),
        GhostConfig(3, 480, 112, 0.25, 1),
        GhostConfig(3, 672, 112, 0.25, 1),
    ],
    [GhostConfig(5, 672, 160, 0.25, 2)],
    [
        GhostConfig(5, 960, 160, 0, 1),
        GhostConfig(5, 960, 160, 0.25, 1),
        GhostConfig(5, 960, 160, 0, 1),
        GhostConfig(5, 960, 160, 0.25, 1),
    ],
]


class GhostNet(ImageBackbone):
    """GhostNet (Han et al., CVPR 2020), timm layout.

    Args:
        num_classes: classifier outputs (0: identity in place of the classifier; ``forward`` then
            returns the 1280-d pre-logits after ``conv_head``).
        in_chans: input image channels.
        width_mult: width multiplier (rounded to multiples of 4).
        dropout: dropout before the classifier (0.2).

    Example:
        >>> GhostNet(num_classes=10)(torch.randn(1, 3, 64, 64)).shape
        torch.Size([1, 10])
    """

    default_input_size = 224

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, width_mult: float = 1.0, dropout: float = 0.2) -> None:
        super().__init__()
        self.in_chans = in_chans
        check_common_args(num_classes, in_chans, width_mult, dropout)
        self.num_classes = num_classes
        stem_channels = make_divisible(16 * width_mult, 4)
        self.conv_stem = nn.Conv2d(in_chans, stem_channels, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_channels)
        self.act1 = nn.ReLU(inplace=True)
        stages: List[nn.Module] = []
        in_channels = stem_channels
        for stage in GHOSTNET_STAGES:
            blocks = []
            for row in stage:
                out_channels = make_divisible(row.out_channels * width_mult, 4)
                mid_channels = make_divisible(row.expanded_channels * width_mult, 4)
                blocks.append(GhostBottleneck(in_channels, mid_channels, out_channels, row.kernel_size, row.stride, row.se_ratio))
                in_channels = out_channels
            stages.append(nn.Sequential(*blocks))
        self.num_features = make_divisible(GHOSTNET_STAGES[-1][-1].expanded_channels * width_mult, 4)  # 960
        stages.append(nn.Sequential(ConvNormAct(in_channels, self.num_features, 1, act="relu")))
        self.blocks = nn.Sequential(*stages)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.head_hidden_size = 1280
        self.conv_head = nn.Conv2d(self.num_features, self.head_hidden_size, 1, bias=True)
        self.act2 = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(p=dropout)
        self.classifier = nn.Linear(self.head_hidden_size, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_chans, H, W) -> (B, 960, H/32, W/32)."""
        x = self.act1(self.bn1(self.conv_stem(x)))
        return self.blocks(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act2(self.conv_head(self.avgpool(x)))  # (B, 960, H, W) -> (B, 1280, 1, 1)
        return self.classifier(self.dropout(torch.flatten(x, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def convert_external_state_dict(self, state_dict: Mapping[str, torch.Tensor], source: str) -> Dict[str, torch.Tensor]:
        """Rename timm ``ghostnet_*`` keys: SE ``conv_reduce/conv_expand`` -> ``fc1/fc2``, last ConvBnAct."""
        if source != "timm":
            return dict(state_dict)
        last = len(self.blocks) - 1
        rules = [
            (r"\.se\.conv_reduce\.", ".se.fc1."),
            (r"\.se\.conv_expand\.", ".se.fc2."),
            (rf"^blocks\.{last}\.0\.conv\.", f"blocks.{last}.0.0."),
            (rf"^blocks\.{last}\.0\.bn1\.", f"blocks.{last}.0.1."),
        ]
        return remap_keys(state_dict, rules)


@register_backbone(
    "ghostnet_100",
    family="cnn",
    aliases=("ghostnet",),
    paper="Han, Wang, Tian, Guo, Xu, Xu: GhostNet: More Features from Cheap Operations",
    venue="CVPR",
    year=2020,
    params=5_182_508,
)
def ghostnet_100(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> GhostNet:
    """GhostNet 1.0x (timm ``ghostnet_100``: 5,182,508 parameters).

    Example:
        >>> ghostnet_100(num_classes=10)(torch.randn(1, 3, 64, 64)).shape
        torch.Size([1, 10])
    """
    return GhostNet(num_classes=num_classes, in_chans=in_chans, **kwargs)
