"""Swin-T: the hierarchical vision transformer with shifted windows, on plugattn's fused window op.

Paper: Ze Liu, Yutong Lin, Yue Cao, Han Hu, Yixuan Wei, Zheng Zhang, Stephen Lin, Baining Guo, "Swin
Transformer: Hierarchical Vision Transformer using Shifted Windows", ICCV 2021. Sec. 3 / Fig. 3 and
Sec. 3.3 (architecture variants):

* patch partition + linear embedding: a 4×4 stride-4 convolution to C = 96, LayerNorm;
* four stages of (2, 2, 6, 2) Swin blocks with (3, 6, 12, 24) heads of 32 channels, C = 96, 192, 384,
  768; stages 2-4 start with patch merging (concatenate 2×2 neighbours → LayerNorm → Linear 4C → 2C,
  no bias);
* a Swin block (Eq. 3): ``x = x + (S)W-MSA(LN(x)); x = x + MLP(LN(x))`` with MLP ratio 4 and GELU;
  blocks alternate W-MSA (shift 0) and SW-MSA (shift ⌊M/2⌋ = 3), window M = 7, relative position
  bias (Eq. 4). As in the official code and timm, a stage whose map at the design resolution (224)
  is not larger than the window (stage 4: 7×7) never shifts;
* final LayerNorm, global average pooling, linear head (1000 ImageNet classes).
Stochastic depth rises linearly to 0.2 over the 12 blocks (Sec. 4.1, Swin-T).

The window attention runs on :func:`plugattn.kernels.window_attention`: the fused Triton kernel on
CUDA, the PyTorch reference elsewhere (the −100 shifted-window mask and timm's padding convention are
documented there).

Parameter names and layout are timm's ``swin_tiny_patch4_window7_224`` (``patch_embed.proj``,
``layers.i.downsample``, ``layers.i.blocks.j.attn.qkv``, ...); :meth:`SwinTransformer.convert_external_state_dict`
renames ``head.fc`` → ``head`` and drops the index/mask buffers old checkpoints store, so
``load_external_weights(model, timm_model.state_dict(), "timm")`` reproduces timm's outputs.

Reference parameter count (1000 classes): 28,288,354 — timm's ``swin_tiny_patch4_window7_224``, the
28M of the paper's Table 1 (Swin-T: 28M params, 4.5G FLOPs).

Input sizes: any H, W. A map not divisible by the patch size (4) is zero-padded at the bottom/right
before the embedding, an odd map before patch merging (as timm), and a stage map that is not a
multiple of the window is padded inside the attention op (padded tokens are zero q, k, v). At 224
(and every multiple of 224) no padding happens and outputs equal timm's; other sizes run, but timm
would additionally shrink windows there, so they are not compared. All shape handling is traceable:
``torch.fx.symbolic_trace`` works and the op appears as one ``window_attention`` call per block.

``forward_features`` returns the normalised last-stage map as (B, 768, H/32, W/32) — channels first,
like the CNN backbones, so an injected attention or a detection neck can use it directly.
Injection site with a (B, C, H, W) map: the patch embedding's ``Conv2d``. The Swin blocks work on
channels-last (B, H, W, C) tokens (as timm's), which are 4-D too: do not inject after them.
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Sequence

import torch
import torch.fx
import torch.nn as nn
import torch.nn.functional as F

from ..._validate import check_int
from ...kernels.window_attention_kernel import window_attention
from ..layers import DropPath, ImageBackbone, Mlp, PatchEmbed, check_rate, init_trunc_normal_, linear_drop_path_rates
from ..registry import register_backbone

__all__ = ["WindowMSA", "SwinTransformerBlock", "PatchMerging", "SwinStage",
           "SwinTransformer", "swin_tiny"]


class WindowMSA(nn.Module):
    """W-MSA / SW-MSA of Eq. (4) on (B, H, W, dim) tokens; named ``attn`` in a block (timm layout).

    Example:
        >>> WindowMSA(96, 3, window_size=7, shift_size=3)(torch.randn(1, 14, 14, 96)).shape
        torch.Size([1, 14, 14, 96])
    """

    def __init__(self, dim: int, num_heads: int, window_size: int = 7, shift_size: int = 0, qkv_bias: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"num_heads must divide dim={dim}, got num_heads={num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.window_size = window_size
        self.shift_size = shift_size
        self.scale = self.head_dim ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        qkv = self.qkv(x)  # (B, H, W, 3·dim), channels (3, heads, d) as timm's
        attended = window_attention(qkv, self.relative_position_bias_table, self.window_size, self.shift_size,
                                    self.scale)  # (B, H, W, dim); one FX node
        return self.proj(attended)  # (B, H, W, dim)


class SwinTransformerBlock(nn.Module):
    """Eq. (3): x + (S)W-MSA(LN(x)), then x + MLP(LN(x)), on (B, H, W, dim) tokens.

    Example:
        >>> SwinTransformerBlock(96, 3, shift_size=3)(torch.randn(1, 7, 7, 96)).shape
        torch.Size([1, 7, 7, 96])
    """

    def __init__(self, dim: int, num_heads: int, window_size: int = 7, shift_size: int = 0,
                 mlp_ratio: float = 4.0, drop_path: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowMSA(dim, num_heads, window_size, shift_size)
        self.drop_path1 = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path2 = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path1(self.attn(self.norm1(x)))
        return x + self.drop_path2(self.mlp(self.norm2(x)))


class PatchMerging(nn.Module):
    """Concatenate each 2×2 neighbourhood (odd maps zero-padded), LayerNorm, Linear 4·dim -> 2·dim.

    Example:
        >>> PatchMerging(96)(torch.randn(1, 7, 8, 96)).shape
        torch.Size([1, 4, 4, 192])
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (0, 0, 0, x.shape[2] % 2, 0, x.shape[1] % 2))  # (B, H, W, C), H and W even
        # (B, H, W, C) -> (B, H/2, 2, W/2, 2, C) -> (B, H/2, W/2, [w-offset, h-offset, C]): the
        # concatenation order x00, x10, x01, x11 of the official code
        x = x.unflatten(1, (-1, 2)).unflatten(3, (-1, 2)).permute(0, 1, 3, 4, 2, 5).flatten(3)
        return self.reduction(self.norm(x))


class SwinStage(nn.Module):
    """Optional patch merging, then ``depth`` blocks alternating shift 0 and ⌊M/2⌋."""

    def __init__(self, dim: int, out_dim: int, depth: int, num_heads: int, window_size: int, downsample: bool,
                 shift: bool, drop_paths: Sequence[float], mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.downsample = PatchMerging(dim) if downsample else nn.Identity()
        self.blocks = nn.Sequential(*[
            SwinTransformerBlock(
                out_dim, num_heads, window_size,
                shift_size=window_size // 2 if (shift and index % 2 == 1) else 0,
                mlp_ratio=mlp_ratio, drop_path=drop_paths[index],
            )
            for index in range(depth)
        ])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


class SwinTransformer(ImageBackbone):
    """Swin Transformer (Liu et al., ICCV 2021); defaults are Swin-T. See the module docstring.

    Example:
        >>> model = SwinTransformer(num_classes=10, embed_dim=32, depths=(1, 1), num_heads=(1, 2))
        >>> model(torch.randn(1, 3, 64, 64)).shape
        torch.Size([1, 10])
    """

    default_input_size = 224

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, img_size: int = 224, patch_size: int = 4,
                 embed_dim: int = 96, depths: Sequence[int] = (2, 2, 6, 2), num_heads: Sequence[int] = (3, 6, 12, 24),
                 window_size: int = 7, mlp_ratio: float = 4.0, drop_path_rate: float = 0.2) -> None:
        super().__init__()
        self.in_chans = in_chans
        check_int("num_classes", num_classes, minimum=0)
        check_int("in_chans", in_chans)
        check_int("img_size", img_size)
        check_int("patch_size", patch_size)
        check_int("embed_dim", embed_dim)
        check_int("window_size", window_size)
        check_rate("drop_path_rate", drop_path_rate)
        depths, num_heads = tuple(depths), tuple(num_heads)
        if len(depths) != len(num_heads) or not depths:
            raise ValueError(f"depths and num_heads need one entry per stage, got depths={depths}, "
                             f"num_heads={num_heads}")
        for stage, (depth, heads) in enumerate(zip(depths, num_heads)):
            check_int(f"depths[{stage}]", depth)
            check_int(f"num_heads[{stage}]", heads)
            if (embed_dim * 2 ** stage) % heads:
                raise ValueError(f"num_heads[{stage}]={heads} must divide the stage width {embed_dim * 2 ** stage}")
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.default_input_size = img_size
        self.num_features = embed_dim * 2 ** (len(depths) - 1)

        # patch partition + linear embedding + LayerNorm: (B, H/p, W/p, C) tokens, any H, W (zero-padded)
        self.patch_embed = PatchEmbed(in_chans, embed_dim, patch_size, norm_layer=nn.LayerNorm, layout="nhwc",
                                      pad_input=True)
        total = sum(depths)  # stochastic depth rising linearly 0 -> drop_path_rate (plain floats: builds on meta)
        rates = linear_drop_path_rates(drop_path_rate, total)
        stages = []
        resolution = -(-img_size // patch_size)
        for stage, (depth, heads) in enumerate(zip(depths, num_heads)):
            if stage > 0:
                resolution = -(-resolution // 2)
            dim = embed_dim * 2 ** max(stage - 1, 0)
            first = sum(depths[:stage])
            stages.append(SwinStage(
                dim, embed_dim * 2 ** stage, depth, heads, window_size, downsample=stage > 0,
                shift=resolution > window_size, drop_paths=rates[first:first + depth], mlp_ratio=mlp_ratio,
            ))
        self.layers = nn.Sequential(*stages)
        self.norm = nn.LayerNorm(self.num_features)
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        init_trunc_normal_(self)  # as the official code / timm: truncated normal (std .02) linears, zero bias
        for module in self.modules():
            if isinstance(module, WindowMSA):
                nn.init.trunc_normal_(module.relative_position_bias_table, std=0.02)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_chans, H, W) -> normalised last-stage map (B, num_features, H/32, W/32)."""
        x = self.layers(self.patch_embed(x))  # (B, H/32, W/32, C)
        return self.norm(x).permute(0, 3, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.forward_features(x).mean(dim=(2, 3))  # (B, C, h, w) -> (B, C)
        return self.head(pooled)

    def convert_external_state_dict(self, state_dict: Mapping[str, torch.Tensor], source: str) -> Dict[str, torch.Tensor]:
        """timm's swin_tiny_patch4_window7_224 keys -> ours (``head.fc`` -> ``head``; stored
        ``relative_position_index`` / ``attn_mask`` buffers dropped: we compute them on the fly)."""
        if source != "timm":
            raise ValueError(f"SwinTransformer loads weights from source 'timm' only, got {source!r}")
        converted: Dict[str, torch.Tensor] = {}
        for key, value in state_dict.items():
            if key.endswith(("relative_position_index", "attn_mask")):
                continue
            if key.startswith("head.fc."):
                key = "head." + key[len("head.fc."):]
            converted[key] = value
        return converted


@register_backbone("swin_tiny", family="vit", aliases=("swin_t", "swin_tiny_patch4_window7_224"), params=28_288_354,
                   paper="Liu, Lin, Cao, Hu, Wei, Zhang, Lin, Guo: Swin Transformer: Hierarchical Vision "
                         "Transformer using Shifted Windows", venue="ICCV", year=2021)
def swin_tiny(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> SwinTransformer:
    """Swin-T: C = 96, depths (2, 2, 6, 2), heads (3, 6, 12, 24), window 7 (28,288,354 parameters, as
    timm's swin_tiny_patch4_window7_224; paper Table 1: 28M).

    Example:
        >>> swin_tiny(num_classes=0).num_features
        768
    """
    return SwinTransformer(num_classes=num_classes, in_chans=in_chans, **kwargs)
