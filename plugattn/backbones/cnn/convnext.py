"""ConvNeXt-T/S/B.

Paper: Zhuang Liu, Hanzi Mao, Chao-Yuan Wu, Christoph Feichtenhofer, Trevor Darrell, Saining Xie,
"A ConvNet for the 2020s", CVPR 2022. Section 2 / Fig. 4 and the "ConvNeXt variants" list:

* stem: 4x4 conv, stride 4 ("patchify"), then LayerNorm;
* block (Fig. 4 right): 7x7 depthwise conv -> LayerNorm -> Linear C->4C -> GELU -> Linear 4C->C,
  scaled by a learnable per-channel layer scale (init 1e-6), stochastic depth, residual add;
* between stages: LayerNorm then a 2x2 conv with stride 2;
* head: global average pool -> LayerNorm -> Linear.
* T: C = (96, 192, 384, 768), B = (3, 3, 9, 3); S: same C, B = (3, 3, 27, 3);
  B: C = (128, 256, 512, 1024), B = (3, 3, 27, 3).

Stochastic-depth rates (linearly increasing over blocks, as the paper's training recipe and
torchvision): 0.1 (T), 0.4 (S), 0.5 (B). Init: truncated normal (std 0.02) for conv and linear
weights, zero biases (torchvision / official code).

Module names are torchvision's (``features.i``, ``block.0/2/3/5``, ``layer_scale``,
``classifier.0/2``), so torchvision's ``convnext_*`` state_dicts load unchanged; timm's
(``stem``, ``stages.i.blocks.j.conv_dw``, ``mlp.fc1``, ``gamma``, ``head.norm``...) are renamed by
:meth:`ConvNeXt.convert_external_state_dict`.

Reference parameter counts (1000 classes), torchvision's published counts, re-measured here by
building torchvision (and timm, same numbers) with random weights: convnext_tiny 28,589,128,
convnext_small 50,223,688, convnext_base 88,591,464.
"""
from __future__ import annotations

import re
from typing import Any, Dict, List, Mapping, Sequence

import torch
import torch.nn as nn

from ..._validate import check_int
from ..layers import DropPath, ImageBackbone, LayerNorm2d, Permute, init_trunc_normal_, linear_drop_path_rates
from ..registry import register_backbone
from ..weights import remap_keys

__all__ = ["ConvNeXtBlock", "ConvNeXt", "convnext_tiny", "convnext_small", "convnext_base"]


class ConvNeXtBlock(nn.Module):
    """ConvNeXt block: ``x + drop_path(gamma * pwconv2(gelu(pwconv1(LN(dwconv7x7(x))))))``.

    Example:
        >>> ConvNeXtBlock(32)(torch.randn(1, 32, 8, 8)).shape
        torch.Size([1, 32, 8, 8])
    """

    def __init__(self, dim: int, layer_scale: float = 1e-6, drop_path: float = 0.0) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim, bias=True),
            Permute([0, 2, 3, 1]),  # (B, C, H, W) -> (B, H, W, C): the MLP acts per pixel
            nn.LayerNorm(dim, eps=1e-6),
            nn.Linear(dim, 4 * dim),
            nn.GELU(),
            nn.Linear(4 * dim, dim),
            Permute([0, 3, 1, 2]),  # -> (B, C, H, W)
        )
        self.layer_scale = nn.Parameter(torch.full((dim, 1, 1), float(layer_scale)))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop_path(self.layer_scale * self.block(x))


class ConvNeXt(ImageBackbone):
    """ConvNeXt with ``depths`` blocks and ``dims`` channels per stage.

    Example:
        >>> model = ConvNeXt(depths=(1, 1, 1, 1), dims=(8, 16, 32, 64), num_classes=5)
        >>> model(torch.randn(1, 3, 64, 64)).shape
        torch.Size([1, 5])
        >>> model.forward_features(torch.randn(1, 3, 64, 64)).shape
        torch.Size([1, 64, 2, 2])
    """

    default_input_size = 224

    def __init__(
        self,
        depths: Sequence[int] = (3, 3, 9, 3),
        dims: Sequence[int] = (96, 192, 384, 768),
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_path_rate: float = 0.0,
        layer_scale: float = 1e-6,
    ) -> None:
        super().__init__()
        self.in_chans = in_chans
        check_int("num_classes", num_classes, minimum=0)
        check_int("in_chans", in_chans, minimum=1)
        if len(depths) != 4 or len(dims) != 4:
            raise ValueError(
                f"depths and dims must have 4 entries each, got depths={list(depths)!r}, dims={list(dims)!r}"
            )
        for name, values in (("depths", depths), ("dims", dims)):
            for value in values:
                check_int(name, value, minimum=1)
        if not 0.0 <= drop_path_rate < 1.0:
            raise ValueError(f"drop_path_rate must be in [0, 1), got {drop_path_rate!r}")
        if not layer_scale > 0:
            raise ValueError(f"layer_scale must be > 0, got {layer_scale!r}")
        self.num_classes = num_classes
        self.num_features = dims[-1]

        stem = nn.Sequential(
            nn.Conv2d(in_chans, dims[0], kernel_size=4, stride=4),
            LayerNorm2d(dims[0], eps=1e-6),
        )
        layers: List[nn.Module] = [stem]
        rates = linear_drop_path_rates(drop_path_rate, sum(depths))
        block_id = 0
        for stage, (depth, dim) in enumerate(zip(depths, dims)):
            if stage > 0:
                layers.append(
                    nn.Sequential(LayerNorm2d(dims[stage - 1], eps=1e-6), nn.Conv2d(dims[stage - 1], dim, 2, stride=2))
                )
            blocks = []
            for _ in range(depth):
                blocks.append(ConvNeXtBlock(dim, layer_scale, rates[block_id]))
                block_id += 1
            layers.append(nn.Sequential(*blocks))
        # features: 0 stem, 1 stage1, 2 down, 3 stage2, 4 down, 5 stage3, 6 down, 7 stage4 (torchvision order)
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        head = nn.Linear(dims[-1], num_classes) if num_classes > 0 else nn.Identity()
        self.classifier = nn.Sequential(LayerNorm2d(dims[-1], eps=1e-6), nn.Flatten(1), head)

        init_trunc_normal_(self, (nn.Conv2d, nn.Linear))  # truncated normal (std 0.02), zero bias

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_chans, H, W) -> (B, dims[-1], H/32, W/32)."""
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.forward_features(x))  # -> (B, C, 1, 1)
        return self.classifier(x)  # LayerNorm, flatten, linear -> (B, num_classes)

    def convert_external_state_dict(
        self, state_dict: Mapping[str, torch.Tensor], source: str
    ) -> Dict[str, torch.Tensor]:
        """torchvision keys load as they are; timm keys are renamed and timm's ``gamma`` (C,) is
        reshaped to our ``layer_scale`` (C, 1, 1)."""
        if source != "timm":
            return dict(state_dict)

        def stage_index(match: "re.Match[str]") -> str:
            return f"features.{2 * int(match.group(1)) + 1}.{match.group(2)}."

        def downsample_index(match: "re.Match[str]") -> str:
            return f"features.{2 * int(match.group(1))}."

        renamed = remap_keys(
            state_dict,
            [
                (r"^stem\.", "features.0."),
                (r"^head\.norm\.", "classifier.0."),
                (r"^head\.fc\.", "classifier.2."),
                (r"\.conv_dw\.", ".block.0."),
                (r"\.norm\.", ".block.2."),
                (r"\.mlp\.fc1\.", ".block.3."),
                (r"\.mlp\.fc2\.", ".block.5."),
                (r"\.gamma$", ".layer_scale"),
            ],
        )
        converted: Dict[str, torch.Tensor] = {}
        for key, value in renamed.items():
            key = re.sub(r"^stages\.(\d+)\.blocks\.(\d+)\.", stage_index, key)
            key = re.sub(r"^stages\.(\d+)\.downsample\.", downsample_index, key)
            if key.endswith(".layer_scale") and value.dim() == 1:
                value = value.reshape(-1, 1, 1)  # (C,) -> (C, 1, 1)
            converted[key] = value
        return converted


_PAPER = "Liu, Mao, Wu, Feichtenhofer, Darrell, Xie: A ConvNet for the 2020s"


def _convnext(depths, dims, default_drop_path: float, num_classes: int, in_chans: int, **kwargs: Any) -> ConvNeXt:
    kwargs.setdefault("drop_path_rate", default_drop_path)
    return ConvNeXt(depths, dims, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_backbone("convnext_tiny", family="cnn", paper=_PAPER, venue="CVPR", year=2022, params=28_589_128)
def convnext_tiny(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ConvNeXt:
    """ConvNeXt-T: dims (96, 192, 384, 768), depths (3, 3, 9, 3), stochastic depth 0.1.

    Example:
        >>> convnext_tiny(num_classes=10)(torch.randn(1, 3, 64, 64)).shape
        torch.Size([1, 10])
    """
    return _convnext((3, 3, 9, 3), (96, 192, 384, 768), 0.1, num_classes, in_chans, **kwargs)


@register_backbone("convnext_small", family="cnn", paper=_PAPER, venue="CVPR", year=2022, params=50_223_688)
def convnext_small(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ConvNeXt:
    """ConvNeXt-S: dims (96, 192, 384, 768), depths (3, 3, 27, 3), stochastic depth 0.4.

    Example:
        >>> len(convnext_small().features[5])
        27
    """
    return _convnext((3, 3, 27, 3), (96, 192, 384, 768), 0.4, num_classes, in_chans, **kwargs)


@register_backbone("convnext_base", family="cnn", paper=_PAPER, venue="CVPR", year=2022, params=88_591_464)
def convnext_base(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ConvNeXt:
    """ConvNeXt-B: dims (128, 256, 512, 1024), depths (3, 3, 27, 3), stochastic depth 0.5.

    Example:
        >>> convnext_base().num_features
        1024
    """
    return _convnext((3, 3, 27, 3), (128, 256, 512, 1024), 0.5, num_classes, in_chans, **kwargs)
