"""GCT: Gated Channel Transformation.

Yang, Zhu, Wu, Yang, "Gated Channel Transformation for Visual Recognition", CVPR 2020.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .._validate import check_choice, check_feature_map, check_int, check_positive_float
from .registry import register_attention


@register_attention(
    "gct",
    aliases=("gated_channel_transformation",),
    paper="Yang et al., Gated Channel Transformation for Visual Recognition",
    venue="CVPR",
    year=2020,
)
class GCT(nn.Module):
    """Gated Channel Transformation (Yang et al., CVPR 2020, Sec. 3, Eqs. 1-3).

    Global context embedding (Eq. 1), per channel c:
        l2: s_c = alpha_c * (sum_hw x_c^2 + eps)^(1/2)
        l1: s_c = alpha_c * sum_hw |x_c|      (|.| skipped when ``after_relu``: x >= 0 already)
    Channel normalisation (Eq. 2):
        l2: s^_c = sqrt(C) * s_c / (sum_c s_c^2 + eps)^(1/2)
        l1: s^_c = C * s_c / (sum_c |s_c| + eps)
    Gating adaptation (Eq. 3): out = x * (1 + tanh(gamma_c * s^_c + beta_c)).

    The paper states Eqs. 1-2 for the l2 norm; the l1 variant is the ``mode="l1"`` of the official code
    (github.com/z-x-yang/GCT, ``PyTorch/GCT.py``: l1 embedding, normalised by the l1 norm of s scaled by C,
    the l1 analogue of Eq. 2).
    alpha starts at 1 and gamma = beta = 0 as in the official code, so the gate is 1 + tanh(0) = 1 and the
    block starts as the identity.
    Deviation from the official code, which in both modes divides by the *mean* over channels plus eps
    (l2: ``gamma / sqrt(mean_c(s^2) + eps)``, l1: ``gamma / (mean_c(|s|) + eps)``): here eps is added to
    the *sum*, as we read Eq. 2; the two differ only in where eps sits (C * eps vs eps). Parameters: 3C.

    Args:
        num_channels: C.
        epsilon: small constant of Eqs. 1-2.
        mode: "l2" (paper default) or "l1".
        after_relu: l1 mode only -- the input is known to be non-negative, skip the absolute value.

    Example:
        >>> gct = GCT(64)
        >>> x = torch.randn(2, 64, 8, 8)
        >>> torch.equal(gct(x), x)  # identity at init
        True
    """

    def __init__(self, num_channels: int, epsilon: float = 1e-5, mode: str = "l2", after_relu: bool = False) -> None:
        super().__init__()
        self.num_channels = check_int("num_channels", num_channels)
        self.epsilon = check_positive_float("epsilon", epsilon)
        self.mode = check_choice("mode", mode, ["l2", "l1"])
        if not isinstance(after_relu, bool):
            raise ValueError(f"after_relu must be a bool, got {after_relu!r}")
        self.after_relu = after_relu
        self.alpha = nn.Parameter(torch.ones(1, num_channels, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, num_channels, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, num_channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_feature_map(x, self.num_channels, "GCT")
        if self.mode == "l2":
            # Eq. 1: (B, C, H, W) -> (B, C, 1, 1)
            embedding = self.alpha * (x.square().sum(dim=(2, 3), keepdim=True) + self.epsilon).sqrt()
            # Eq. 2: sqrt(C) / ||s||_2, (B, 1, 1, 1)
            norm = (self.num_channels ** 0.5) / (embedding.square().sum(dim=1, keepdim=True) + self.epsilon).sqrt()
        else:
            magnitude = x if self.after_relu else x.abs()
            embedding = self.alpha * magnitude.sum(dim=(2, 3), keepdim=True)  # (B, C, 1, 1)
            norm = self.num_channels / (embedding.abs().sum(dim=1, keepdim=True) + self.epsilon)  # (B, 1, 1, 1)
        gate = 1.0 + torch.tanh(self.gamma * (embedding * norm) + self.beta)  # Eq. 3, (B, C, 1, 1)
        return x * gate
