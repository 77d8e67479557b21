"""The pieces of Vision Permutator (Hou, Jiang, Yuan, Cheng, Yan, Feng, "Vision Permutator: A Permutable
MLP-Like Architecture for Visual Recognition", IEEE TPAMI 2022) that CycleMLP (Chen et al., ICLR 2022) and
DynaMixer (Wang et al., ICML 2022) reuse: the pre-norm block around a token mixer, and the split-attention
fusion of three branches (Eq. (3)-(4)). Names are the official ones (``attn``, ``mlp``, ``reweight``)."""
from __future__ import annotations

import torch
import torch.fx
import torch.nn as nn
from einops import rearrange

from .drop import DropPath
from .mlp import Mlp

# einops cannot see torch.fx proxies: record rearrange as one opaque call so the models stay traceable
torch.fx.wrap("rearrange")


def reweight_branches(x_h: torch.Tensor, x_w: torch.Tensor, x_c: torch.Tensor, reweight: nn.Module) -> torch.Tensor:
    """Split-attention fusion of three (B, H, W, C) branches (ViP Eq. (3)-(4), reused by CycleMLP and
    DynaMixer): ``a = softmax over the 3 branches of reweight(mean_HW(x_h + x_w + x_c))``, one weight
    triple per channel; returns ``a_h x_h + a_w x_w + a_c x_c``.

    ``reweight`` maps (B, C) to (B, 3C) laid out channel-major, ``(c, branch)`` (the official layout).

    Example:
        >>> x = torch.randn(2, 4, 4, 8)
        >>> reweight_branches(x, x, x, Mlp(8, 2, 24)).shape
        torch.Size([2, 4, 4, 8])
    """
    pooled = (x_h + x_w + x_c).mean(dim=(1, 2))  # (B, H, W, C) -> (B, C)
    weights = rearrange(reweight(pooled), "b (c k) -> k b 1 1 c", k=3).softmax(dim=0)  # (3, B, 1, 1, C)
    return x_h * weights[0] + x_w * weights[1] + x_c * weights[2]


class PermutatorBlock(nn.Module):
    """Pre-norm MLP block of ViP (and of CycleMLP / DynaMixer, which reuse it with their own token mixer):
    ``x + drop_path(attn(LN(x)))`` then ``x + drop_path(mlp(LN(x)))``. Takes and returns (B, C, H, W);
    the mixers and MLPs work channels-last inside.

    Example:
        >>> PermutatorBlock(16, nn.Linear(16, 16))(torch.randn(2, 16, 4, 4)).shape
        torch.Size([2, 16, 4, 4])
    """

    def __init__(self, dim: int, token_mixer: nn.Module, mlp_ratio: float = 3.0, drop_path: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = token_mixer  # "attn": the official parameter name of the token mixer
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)  # (B, C, H, W) -> (B, H, W, C)
        x = x + self.drop_path(self.attn(self.norm1(x)))
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x.permute(0, 3, 1, 2)  # -> (B, C, H, W)
