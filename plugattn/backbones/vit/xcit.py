"""XCiT-T12/16: Cross-Covariance Image Transformer.

Paper: Alaaeldin El-Nouby, Hugo Touvron, Mathilde Caron, Piotr Bojanowski, Matthijs Douze, Armand Joulin,
Ivan Laptev, Natalia Neverova, Gabriel Synnaeve, Jakob Verbeek, Hervé Jégou, "XCiT: Cross-Covariance Image
Transformers", NeurIPS 2021. Section 3, Eq. (3)-(4), Fig. 1 and Table 1 / Appendix:

* patch embedding: four 3 x 3 stride-2 convolutions with BatchNorm and GELU in between
  (C/8, C/4, C/2, C channels), a 16 x 16 patch grid reduction;
* sinusoidal ("Fourier") 2-D position encoding of the patch grid (32 frequencies per axis, projected
  by a 1 x 1 conv to C), computed for whatever grid the input gives;
* XCiT layer: x += gamma1 * XCA(LN(x)); x += gamma3 * LPI(LN(x)); x += gamma2 * MLP(LN(x)).
  XCA, Eq. (3)-(4): per head, attention over CHANNELS: softmax(K_hat^T Q_hat / tau) with Q_hat, K_hat
  L2-normalised along the tokens and a learned per-head temperature tau, applied to V
  (``F.scaled_dot_product_attention`` on the transposed (d x N) head tensors, scale 1, with the
  temperature folded into Q). LPI: depthwise 3x3 conv -> GELU -> BatchNorm -> depthwise 3x3 conv on
  the token map;
* two class-attention layers (CaiT, Touvron et al. ICCV 2021) with the class token concatenated FIRST:
  only the class token queries; with ``tokens_norm`` (T12) the second LayerNorm covers every token;
* final LayerNorm, head on the class token.

T12/16: C=192, 12 XCiT layers, 4 heads, layer-scale init eta=1. Layer order 1-3-2 and parameter names
are those of the official code, which timm keeps (``patch_embed.proj.0.0``, ``pos_embed.token_projection``,
``blocks.i.attn.temperature``, ``local_mp.conv1``, ``cls_attn_blocks.i.attn.q``...), so
``timm.create_model("xcit_tiny_12_p16_224")`` weights load unchanged. Init as timm: truncated normal
(std 0.02) for Linear weights and the class token, zero biases.

Reference parameter count (1000 classes): 6,716,272 -- timm's ``xcit_tiny_12_p16_224``, re-measured by
building it here (the paper's Table 1 rounds XCiT-T12 to 7M).

Injection sites producing (B, C, H, W) maps: :class:`ConvPatchEmbed` (``after="ConvPatchEmbed"``) and
:class:`PositionalEncodingFourier`; inside :class:`LPI` the convolutions/BatchNorm act on maps too
(``after="name:blocks.*.local_mp.conv2"`` would reach them), but :class:`XCABlock`, :class:`LPI` and the
class-attention blocks return tokens, so the injector refuses them.
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.fx
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from ..._validate import check_int
from ..layers import DropPath, ImageBackbone, Mlp, check_heads, check_rate, init_trunc_normal_
from ..registry import register_backbone

# einops cannot see torch.fx proxies: record rearrange as one opaque call so the models stay traceable
torch.fx.wrap("rearrange")

__all__ = ["ConvPatchEmbed", "PositionalEncodingFourier", "XCA", "LPI", "XCABlock", "ClassAttention",
           "ClassAttentionBlock", "XCiT", "xcit_tiny_12_p16_224"]


def conv3x3_bn(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    """3 x 3 conv (no bias) + BatchNorm, indexed 0/1 as the official code.

    Example:
        >>> conv3x3_bn(3, 8, 2)(torch.randn(1, 3, 8, 8)).shape
        torch.Size([1, 8, 4, 4])
    """
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False), nn.BatchNorm2d(out_channels))


class ConvPatchEmbed(nn.Module):
    """Four stride-2 conv3x3-BN layers with GELU between them: (B, 3, H, W) -> (B, C, H/16, W/16).

    Example:
        >>> ConvPatchEmbed(3, 64)(torch.randn(1, 3, 64, 64)).shape
        torch.Size([1, 64, 4, 4])
    """

    def __init__(self, in_chans: int = 3, embed_dim: int = 192) -> None:
        super().__init__()
        if embed_dim % 8:
            raise ValueError(f"embed_dim must be a multiple of 8 (the stem widths are C/8, C/4, C/2), got {embed_dim}")
        self.proj = nn.Sequential(
            conv3x3_bn(in_chans, embed_dim // 8, 2), nn.GELU(),
            conv3x3_bn(embed_dim // 8, embed_dim // 4, 2), nn.GELU(),
            conv3x3_bn(embed_dim // 4, embed_dim // 2, 2), nn.GELU(),
            conv3x3_bn(embed_dim // 2, embed_dim, 2),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class PositionalEncodingFourier(nn.Module):
    """Sinusoidal 2-D encoding of the grid of ``x`` (positions 1..H, 1..W scaled to (0, 2 pi]),
    ``hidden_dim`` frequencies per axis, projected to ``dim`` by a 1 x 1 conv. (B, *, H, W) -> (B, dim, H, W).

    Example:
        >>> PositionalEncodingFourier(dim=16)(torch.zeros(2, 16, 3, 5)).shape
        torch.Size([2, 16, 3, 5])
    """

    def __init__(self, hidden_dim: int = 32, dim: int = 768, temperature: float = 10000.0) -> None:
        super().__init__()
        self.token_projection = nn.Conv2d(hidden_dim * 2, dim, kernel_size=1)
        self.hidden_dim = hidden_dim
        self.temperature = temperature
        self.eps = 1e-6

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ones = torch.ones_like(x[:, 0], dtype=torch.float32)  # (B, H, W): positions by cumulative sums, no shape logic
        y_embed = ones.cumsum(1)
        x_embed = ones.cumsum(2)
        y_embed = y_embed / (y_embed[:, -1:, :] + self.eps) * (2 * math.pi)
        x_embed = x_embed / (x_embed[:, :, -1:] + self.eps) * (2 * math.pi)
        dim_t = torch.arange(self.hidden_dim, dtype=torch.float32, device=x.device)
        dim_t = self.temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / self.hidden_dim)
        pos_x = x_embed[:, :, :, None] / dim_t  # (B, H, W, hidden)
        pos_y = y_embed[:, :, :, None] / dim_t
        # interleave sin (even frequencies) and cos (odd): (B, H, W, hidden/2, 2) -> (B, H, W, hidden)
        pos_x = torch.stack([pos_x[:, :, :, 0::2].sin(), pos_x[:, :, :, 1::2].cos()], dim=4).flatten(3)
        pos_y = torch.stack([pos_y[:, :, :, 0::2].sin(), pos_y[:, :, :, 1::2].cos()], dim=4).flatten(3)
        pos = torch.cat([pos_y, pos_x], dim=3).permute(0, 3, 1, 2)  # (B, 2 * hidden, H, W)
        return self.token_projection(pos.to(x.dtype))


class XCA(nn.Module):
    """Cross-covariance attention, Eq. (3)-(4): attention between the d_head channels of each head.

    Example:
        >>> XCA(16, num_heads=2)(torch.randn(2, 7, 16)).shape
        torch.Size([2, 7, 16])
    """

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = True) -> None:
        super().__init__()
        check_heads(dim, num_heads)
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, N, 3C) -> 3 x (B, heads, d_head, N): channels play the role of the sequence
        qkv = rearrange(self.qkv(x), "b n (three h d) -> three b h d n", three=3, h=self.num_heads)
        q = F.normalize(qkv[0], dim=-1) * self.temperature  # L2 over tokens, then 1/tau folded in
        k = F.normalize(qkv[1], dim=-1)
        x = F.scaled_dot_product_attention(q, k, qkv[2], scale=1.0)  # (B, heads, d_head, N)
        return self.proj(rearrange(x, "b h d n -> b n (h d)"))


class LPI(nn.Module):
    """Local patch interaction on the token map: depthwise conv3x3 -> GELU -> BN -> depthwise conv3x3.
    Tokens (B, N, C) with the grid ``height`` x ``width`` in, tokens out.

    Example:
        >>> LPI(8)(torch.randn(2, 12, 8), 3, 4).shape
        torch.Size([2, 12, 8])
    """

    def __init__(self, dim: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.act = nn.GELU()
        self.bn = nn.BatchNorm2d(dim)
        self.conv2 = nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        x = rearrange(x, "b (h w) c -> b c h w", h=height, w=width)
        x = self.conv2(self.bn(self.act(self.conv1(x))))
        return rearrange(x, "b c h w -> b (h w) c")


class XCABlock(nn.Module):
    """XCiT layer (order XCA, LPI, MLP, each pre-norm, layer-scaled, residual). Tokens in, tokens out.

    Example:
        >>> XCABlock(16, num_heads=2)(torch.randn(1, 6, 16), 2, 3).shape
        torch.Size([1, 6, 16])
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 drop_path: float = 0.0, eta: float = 1.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = XCA(dim, num_heads, qkv_bias)
        self.norm3 = nn.LayerNorm(dim, eps=1e-6)
        self.local_mp = LPI(dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.gamma1 = nn.Parameter(torch.full((dim,), float(eta)))
        self.gamma3 = nn.Parameter(torch.full((dim,), float(eta)))
        self.gamma2 = nn.Parameter(torch.full((dim,), float(eta)))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        x = x + self.drop_path(self.gamma1 * self.attn(self.norm1(x)))
        x = x + self.drop_path(self.gamma3 * self.local_mp(self.norm3(x), height, width))
        return x + self.drop_path(self.gamma2 * self.mlp(self.norm2(x)))


class ClassAttention(nn.Module):
    """Class attention (CaiT): the class token (first) queries all tokens; returns (B, 1, C).

    Example:
        >>> ClassAttention(16, num_heads=2)(torch.randn(2, 5, 16)).shape
        torch.Size([2, 1, 16])
    """

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = True) -> None:
        super().__init__()
        check_heads(dim, num_heads)
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.k = nn.Linear(dim, dim, bias=qkv_bias)
        self.v = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = rearrange(self.q(x[:, :1]), "b n (h d) -> b h n d", h=self.num_heads)  # (B, heads, 1, d)
        k = rearrange(self.k(x), "b n (h d) -> b h n d", h=self.num_heads)
        v = rearrange(self.v(x), "b n (h d) -> b h n d", h=self.num_heads)
        x_cls = F.scaled_dot_product_attention(q, k, v)  # (B, heads, 1, d)
        return self.proj(rearrange(x_cls, "b h n d -> b n (h d)"))


class ClassAttentionBlock(nn.Module):
    """Class-attention layer: only the class token is updated by attention and MLP; with
    ``tokens_norm`` the second LayerNorm is applied to every token (official XCiT code).

    Example:
        >>> ClassAttentionBlock(16, num_heads=2)(torch.randn(2, 5, 16)).shape
        torch.Size([2, 5, 16])
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 eta: float = 1.0, tokens_norm: bool = False) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = ClassAttention(dim, num_heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.gamma1 = nn.Parameter(torch.full((dim,), float(eta)))
        self.gamma2 = nn.Parameter(torch.full((dim,), float(eta)))
        self.tokens_norm = tokens_norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_norm = self.norm1(x)
        x = x + self.gamma1 * torch.cat([self.attn(x_norm), x_norm[:, 1:]], dim=1)
        if self.tokens_norm:
            x = self.norm2(x)
        else:
            x = torch.cat([self.norm2(x[:, :1]), x[:, 1:]], dim=1)
        cls_token = self.gamma2 * self.mlp(x[:, :1])  # only the class token goes through the MLP
        return x + torch.cat([cls_token, x[:, 1:]], dim=1)


class XCiT(ImageBackbone):
    """XCiT: conv patch embedding, Fourier position encoding, XCiT layers, class-attention layers.

    Example:
        >>> model = XCiT(embed_dim=32, depth=1, num_heads=2, cls_attn_layers=1, num_classes=5)
        >>> model(torch.randn(2, 3, 64, 64)).shape
        torch.Size([2, 5])
        >>> model.forward_features(torch.randn(2, 3, 64, 64)).shape  # class token + 4 x 4 patches
        torch.Size([2, 17, 32])
    """

    default_input_size = 224

    def __init__(
        self,
        in_chans: int = 3,
        num_classes: int = 1000,
        embed_dim: int = 192,
        depth: int = 12,
        num_heads: int = 4,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path_rate: float = 0.0,
        cls_attn_layers: int = 2,
        eta: float = 1.0,
        tokens_norm: bool = True,
    ) -> None:
        super().__init__()
        self.in_chans = in_chans
        check_int("in_chans", in_chans)
        check_int("num_classes", num_classes, minimum=0)
        check_int("depth", depth)
        check_int("cls_attn_layers", cls_attn_layers)
        check_heads(embed_dim, num_heads)
        check_rate("drop_path_rate", drop_path_rate)
        self.num_classes = num_classes
        self.num_features = self.embed_dim = embed_dim

        self.patch_embed = ConvPatchEmbed(in_chans, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = PositionalEncodingFourier(dim=embed_dim)
        # the paper trains with a constant stochastic-depth rate over the XCiT layers (official code)
        self.blocks = nn.ModuleList([
            XCABlock(embed_dim, num_heads, mlp_ratio, qkv_bias, drop_path_rate, eta) for _ in range(depth)
        ])
        self.cls_attn_blocks = nn.ModuleList([
            ClassAttentionBlock(embed_dim, num_heads, mlp_ratio, qkv_bias, eta, tokens_norm)
            for _ in range(cls_attn_layers)
        ])
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()

        nn.init.trunc_normal_(self.cls_token, std=0.02)
        init_trunc_normal_(self)  # truncated normal (std 0.02) linears, zero bias

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_chans, H, W) -> normalised tokens (B, 1 + H/16 * W/16, C), class token first."""
        x = self.patch_embed(x)  # (B, C, h, w)
        height, width = x.shape[2], x.shape[3]
        x = x + self.pos_embed(x)
        x = rearrange(x, "b c h w -> b (h w) c")
        for block in self.blocks:
            x = block(x, height, width)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)  # class token first
        for block in self.cls_attn_blocks:
            x = block(x)
        return self.norm(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x)[:, 0])


@register_backbone("xcit_tiny_12_p16_224", family="vit", aliases=("xcit_t12",), venue="NeurIPS", year=2021,
                   params=6_716_272,
                   paper="El-Nouby, Touvron, Caron, Bojanowski, Douze, Joulin, Laptev, Neverova, Synnaeve, Verbeek, "
                         "Jegou: XCiT: Cross-Covariance Image Transformers")
def xcit_tiny_12_p16_224(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> XCiT:
    """XCiT-T12/16: C=192, 12 layers, 4 heads, eta=1, tokens_norm (timm: 6,716,272 parameters).

    Example:
        >>> len(xcit_tiny_12_p16_224().blocks)
        12
    """
    kwargs.setdefault("tokens_norm", True)
    return XCiT(in_chans=in_chans, num_classes=num_classes, embed_dim=192, depth=12, num_heads=4, eta=1.0, **kwargs)
