"""MobileViT-S.

Paper: Sachin Mehta, Mohammad Rastegari, "MobileViT: Light-weight, General-purpose, and Mobile-friendly
Vision Transformer", ICLR 2022. Table 4 / Fig. 1b (architecture, S variant) and Sec. 3.1:

* stem: 3x3 conv, stride 2, 16 channels (BN + Swish);
* MV2 = MobileNetV2 inverted residual with expansion 4 and Swish (identity shortcut when stride 1
  and the width is kept): 16->32 (s1); 32->64 (s2), 64, 64; then before each MobileViT block one
  stride-2 MV2 to 96, 128, 160;
* MobileViT block (Fig. 1b, Eq. (1)): local representation (n x n conv, then a 1x1 conv to the
  transformer width d); unfold into P = h*w = 2x2 pixel positions x N = HW/P patches; L transformer
  layers applied across the N patches independently for every one of the P positions; fold back;
  1x1 conv back to C; concatenate with the block input and fuse with an n x n conv.
  S: d = 144, 192, 240 with L = 2, 4, 3; 4 heads; MLP width 2d; Swish in the MLP (between its two
  layers only, as the official cvnets code).
* 1x1 conv 160 -> 640, global average pooling, linear classifier.

Input sizes: the default is 256 x 256 (the paper's training size). The unfold needs the maps entering
the MobileViT blocks (H/8, H/16, H/32) to be divisible by the 2x2 patch, i.e. H and W divisible by 64
(64, 128, 192, 256, 320 ...); other sizes raise a ``ValueError`` naming the map size (timm instead
resizes such maps bilinearly, which changes the model). The unfold/fold are ``torch.fx.wrap``-ed
functions, so a traced model keeps them as single calls and checks the size at run time.

Module names: ours, with :meth:`MobileViT.convert_external_state_dict` renaming timm's
(``stem.conv``/``bn``, ``stages.i.j.conv1_1x1`` ..., ``final_conv``, ``head.fc``), so timm's
``mobilevit_s`` state_dict loads and gives timm's outputs.

Reference parameter count: timm ``mobilevit_s`` 5,578,632 (1000 classes; measured by building it with
random weights; the paper's Table 4 rounds it to 5.6M).

Injection sites (modules producing (B, C, H, W) maps): :class:`MV2Block` (the 8 inverted residuals),
:class:`MobileViTBlock` (3, its output is a feature map again) and the stem / final ``ConvNormAct``.
The :class:`TransformerLayer` inside a MobileViT block maps tokens (B*P, N, d) and is refused by the
injector with its "(B, C, H, W) feature map" error.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Sequence, Tuple

import torch
import torch.fx
import torch.nn as nn
from einops import rearrange

from ..._validate import check_int
from ..layers import Attention, ConvNormAct, ImageBackbone, MBConv, Mlp, check_probability
from ..registry import register_backbone
from ..weights import remap_keys

__all__ = [
    "MV2Block",
    "TransformerLayer",
    "MobileViTBlock",
    "MobileViT",
    "unfold_patches",
    "fold_patches",
    "mobilevit_s",
]


@torch.fx.wrap
def unfold_patches(x: torch.Tensor, patch_h: int, patch_w: int) -> torch.Tensor:
    """(B, C, H, W) -> (B * ph * pw, H/ph * W/pw, C): for every pixel position inside a patch, the
    sequence of all patches (Fig. 1b "unfold"). ``ValueError`` if H or W is not divisible by the patch.

    Example:
        >>> unfold_patches(torch.randn(2, 8, 4, 6), 2, 2).shape
        torch.Size([8, 6, 8])
    """
    height, width = x.shape[-2], x.shape[-1]
    if height % patch_h or width % patch_w:
        raise ValueError(
            f"MobileViT block: feature map {height}x{width} is not divisible by the {patch_h}x{patch_w} patch; "
            "use an input size divisible by 64 (e.g. 256 or 128)"
        )
    return rearrange(x, "b c (nh ph) (nw pw) -> (b ph pw) (nh nw) c", ph=patch_h, pw=patch_w)


@torch.fx.wrap
def fold_patches(tokens: torch.Tensor, batch: int, height: int, width: int, patch_h: int, patch_w: int) -> torch.Tensor:
    """Inverse of :func:`unfold_patches`: (B * ph * pw, N, C) -> (B, C, H, W).

    Example:
        >>> x = torch.randn(2, 8, 4, 6)
        >>> torch.equal(fold_patches(unfold_patches(x, 2, 2), 2, 4, 6, 2, 2), x)
        True
    """
    return rearrange(
        tokens, "(b ph pw) (nh nw) c -> b c (nh ph) (nw pw)",
        b=batch, ph=patch_h, pw=patch_w, nh=height // patch_h, nw=width // patch_w,
    )


class MV2Block(MBConv):
    """MobileNetV2 inverted residual as MobileViT uses it: expansion 4, Swish, linear projection,
    identity shortcut when stride 1 and width kept (paper Fig. 1b "MV2").

    Example:
        >>> MV2Block(16, 32)(torch.randn(2, 16, 8, 8)).shape
        torch.Size([2, 32, 8, 8])
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, expansion: int = 4) -> None:
        check_int("expansion", expansion)
        super().__init__(in_channels, out_channels, stride=stride, expanded_channels=in_channels * expansion, act="silu")


class TransformerLayer(nn.Module):
    """Pre-norm transformer layer on (B', N, d) tokens: ``x + MHSA(LN(x))``, ``x + MLP(LN(x))`` with a
    Swish MLP of width ``mlp_ratio * d`` (activation only between the MLP's two layers).

    Example:
        >>> TransformerLayer(16, num_heads=4)(torch.randn(3, 5, 16)).shape
        torch.Size([3, 5, 16])
    """

    def __init__(self, dim: int, num_heads: int = 4, mlp_ratio: float = 2.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads=num_heads, qkv_bias=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act="silu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class MobileViTBlock(nn.Module):
    """MobileViT block (paper Sec. 3.1, Fig. 1b): local n x n conv + 1x1 to ``transformer_dim``,
    unfold into 2x2 patches, ``depth`` transformer layers across patches, fold, 1x1 back to C,
    concatenate with the input and fuse with an n x n conv. (B, C, H, W) -> (B, C, H, W).

    Example:
        >>> MobileViTBlock(16, 24, depth=1)(torch.randn(2, 16, 8, 8)).shape
        torch.Size([2, 16, 8, 8])
    """

    def __init__(self, channels: int, transformer_dim: int, depth: int, num_heads: int = 4,
                 patch_size: int = 2, kernel_size: int = 3, mlp_ratio: float = 2.0) -> None:
        super().__init__()
        for name, value in (("channels", channels), ("transformer_dim", transformer_dim), ("depth", depth),
                            ("patch_size", patch_size), ("kernel_size", kernel_size)):
            check_int(name, value)
        self.patch_size = patch_size
        self.conv_kxk = ConvNormAct(channels, channels, kernel_size, act="silu")
        self.conv_1x1 = nn.Conv2d(channels, transformer_dim, 1, bias=False)
        self.transformer = nn.Sequential(*[TransformerLayer(transformer_dim, num_heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(transformer_dim)
        self.conv_proj = ConvNormAct(transformer_dim, channels, 1, act="silu")
        self.conv_fusion = ConvNormAct(2 * channels, channels, kernel_size, act="silu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        y = self.conv_1x1(self.conv_kxk(x))  # local representation: (B, C, H, W) -> (B, d, H, W)
        tokens = unfold_patches(y, self.patch_size, self.patch_size)  # -> (B*P, N, d)
        tokens = self.norm(self.transformer(tokens))  # global representation across patches
        y = fold_patches(tokens, y.shape[0], y.shape[2], y.shape[3], self.patch_size, self.patch_size)  # -> (B, d, H, W)
        y = self.conv_proj(y)  # -> (B, C, H, W)
        return self.conv_fusion(torch.cat((shortcut, y), dim=1))  # (B, 2C, H, W) -> (B, C, H, W)


# (MV2 repeats, output channels, first stride, transformer_dim or None, transformer depth) per stage
MOBILEVIT_S_STAGES: Sequence[Tuple[int, int, int, Any, int]] = (
    (1, 32, 1, None, 0),
    (3, 64, 2, None, 0),
    (1, 96, 2, 144, 2),
    (1, 128, 2, 192, 4),
    (1, 160, 2, 240, 3),
)


class MobileViT(ImageBackbone):
    """MobileViT (Mehta & Rastegari, ICLR 2022): stem, five stages of MV2 / MobileViT blocks, 1x1 conv,
    global average pooling, dropout, linear classifier.

    Example:
        >>> model = MobileViT(num_classes=10)
        >>> model(torch.randn(1, 3, 64, 64)).shape
        torch.Size([1, 10])
        >>> model.forward_features(torch.randn(1, 3, 64, 64)).shape
        torch.Size([1, 640, 2, 2])
    """

    default_input_size = 256
    input_multiple = 64  # the last MobileViT block's map (H/32) must split into 2 x 2 patches

    def __init__(self, stages: Sequence[Tuple[int, int, int, Any, int]] = MOBILEVIT_S_STAGES, stem_channels: int = 16,
                 num_features: int = 640, num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.1,
                 num_heads: int = 4) -> None:
        super().__init__()
        self.in_chans = in_chans
        check_int("num_classes", num_classes, minimum=0)
        check_int("in_chans", in_chans)
        check_probability("dropout", dropout)
        self.num_classes = num_classes
        self.num_features = num_features
        self.stem = ConvNormAct(in_chans, stem_channels, 3, stride=2, act="silu")  # (B, 3, H, W) -> (B, 16, H/2, W/2)
        channels = stem_channels
        stage_modules: List[nn.Module] = []
        for repeats, out_channels, stride, transformer_dim, depth in stages:
            blocks: List[nn.Module] = []
            for index in range(repeats):
                blocks.append(MV2Block(channels, out_channels, stride if index == 0 else 1))
                channels = out_channels
            if transformer_dim is not None:
                blocks.append(MobileViTBlock(channels, transformer_dim, depth, num_heads=num_heads))
            stage_modules.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stage_modules)
        self.final_conv = ConvNormAct(channels, num_features, 1, act="silu")
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(num_features, num_classes) if num_classes > 0 else nn.Identity()
        self._init_weights()

    def _init_weights(self) -> None:
        """Official cvnets init: convs He-normal (fan-out), norms (1, 0), linears N(0, 0.02) (trunc.), zero bias."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm2d, nn.LayerNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_chans, H, W) -> (B, 640, H/32, W/32)."""
        return self.final_conv(self.stages(self.stem(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.pool(self.forward_features(x)), 1)  # -> (B, 640)
        return self.fc(self.dropout(x))

    def convert_external_state_dict(self, state_dict: Mapping[str, torch.Tensor], source: str) -> Dict[str, torch.Tensor]:
        """Rename timm ``mobilevit_s`` keys to ours (``conv``/``bn`` of a ConvNormAct are our indices 0/1)."""
        if source != "timm":
            return dict(state_dict)
        return remap_keys(
            state_dict,
            [
                (r"\.conv1_1x1\.", ".block.0."),
                (r"\.conv2_kxk\.", ".block.1."),
                (r"\.conv3_1x1\.", ".block.2."),
                (r"\.conv\.(weight|bias)$", r".0.\1"),
                (r"\.bn\.", ".1."),
                (r"^head\.fc\.", "fc."),
            ],
        )


@register_backbone(
    "mobilevit_s",
    family="vit",
    paper="Mehta, Rastegari: MobileViT: Light-weight, General-purpose, and Mobile-friendly Vision Transformer",
    venue="ICLR",
    year=2022,
    params=5_578_632,
)
def mobilevit_s(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> MobileViT:
    """MobileViT-S (timm ``mobilevit_s``: 5,578,632 parameters; default input 256 x 256).

    Example:
        >>> mobilevit_s(num_classes=0)(torch.randn(1, 3, 64, 64)).shape
        torch.Size([1, 640])
    """
    return MobileViT(num_classes=num_classes, in_chans=in_chans, **kwargs)
