"""Resampling learned position embeddings to another patch grid (ViT, Dosovitskiy et al., ICLR 2021,
Sec. 3.2: "we perform 2D interpolation of the pre-trained position embeddings")."""
from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F
from einops import rearrange


def resize_pos_embed(pos_embed: torch.Tensor, grid: Tuple[int, int], height: int, width: int,
                     num_prefix_tokens: int = 1, mode: str = "bicubic") -> torch.Tensor:
    """Position embeddings (1, prefix + gh*gw, C) for a ``height`` x ``width`` patch grid: the grid part
    is resized (``mode``; bicubic is antialiased, as timm) when the grid differs, the prefix (class token) kept.

    Every module calling it wraps the name (``torch.fx.wrap("resize_pos_embed")`` at its top level; the
    wrap patches the caller's namespace): traced models then record one call and the size test runs at
    run time.

    Example:
        >>> resize_pos_embed(torch.zeros(1, 1 + 4, 8), (2, 2), 3, 3).shape
        torch.Size([1, 10, 8])
    """
    if (height, width) == tuple(grid):
        return pos_embed
    prefix, patches = pos_embed[:, :num_prefix_tokens], pos_embed[:, num_prefix_tokens:]
    patches = rearrange(patches, "1 (h w) c -> 1 c h w", h=grid[0], w=grid[1])
    patches = F.interpolate(patches.float(), size=(height, width), mode=mode, align_corners=False,
                            antialias=mode == "bicubic").to(pos_embed.dtype)
    patches = rearrange(patches, "1 c h w -> 1 (h w) c")
    return torch.cat([prefix, patches], dim=1)
