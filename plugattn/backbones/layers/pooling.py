"""PoolFormer's token mixer (Yu, Luo, Zhou, Si, Zhou, Wang, Feng, Yan, "MetaFormer Is Actually What You Need
for Vision", CVPR 2022, Eq. (4)), which EfficientFormer's Meta4D blocks reuse (Li et al., NeurIPS 2022, Eq. (3))."""
from __future__ import annotations

import torch
import torch.nn as nn

from ..._validate import check_int


class Pooling(nn.Module):
    """PoolFormer token mixer, Eq. (4): ``AvgPool3x3(x) - x`` (stride 1, padding not counted).

    Example:
        >>> Pooling()(torch.ones(1, 2, 4, 4)).abs().max().item()
        0.0
    """

    def __init__(self, pool_size: int = 3) -> None:
        super().__init__()
        check_int("pool_size", pool_size)
        if pool_size % 2 == 0:
            raise ValueError(f"pool_size must be odd (the map size is kept), got {pool_size}")
        self.pool = nn.AvgPool2d(pool_size, stride=1, padding=pool_size // 2, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x) - x
