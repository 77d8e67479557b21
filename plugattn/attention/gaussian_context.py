"""Gaussian Context Transformer.

Paper: Dongsheng Ruan, Daiyin Wang, Yuan Zheng, Nenggan Zheng, Min Zheng, "Gaussian Context Transformer",
CVPR 2021.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn as nn

from .._validate import check_feature_map, check_int, check_positive_float
from .registry import register_attention

# GCT-B1 bounds its std as c = ALPHA · sigmoid(θ) + BETA, i.e. c in (1, 4).
_B1_ALPHA = 3.0
_B1_BETA = 1.0


@register_attention(
    "gaussian",
    aliases=("gct_gaussian",),
    paper="Ruan, Wang, Zheng, Zheng, Zheng: Gaussian Context Transformer",
    venue="CVPR",
    year=2021,
)
class GaussianContextTransformer(nn.Module):
    """Gaussian Context Transformer (Ruan et al., CVPR 2021), Sec. 3 of the paper::

        z = avg(X)                                  # (B, C, 1, 1)  global context aggregation
        μ = mean_C(z),  σ = sqrt(mean_C((z − μ)²)) + eps
        ẑ = (z − μ) / σ                             # norm(z): zero mean, unit std across channels
        g = exp(−ẑ² / (2 c²))                       # Gaussian with a = 1, b = 0 and std c
        Y = g · X

    Variants:

    * ``learnable=False`` is **GCT-B0**, parameter-free with a fixed std c (the paper finds c = 2 works
      well; it is the default).
    * ``learnable=True`` is **GCT-B1**: c = α·sigmoid(θ) + β keeps c in (β, α + β) with one learnable
      scalar θ (one parameter). α = 3, β = 1 (c in (1, 4)) as in the public GCT-B1 implementations; the
      paper initialises θ = 0 (c = 2.5), here θ starts where c equals the ``c`` argument, so pass
      ``c=2.5`` for the paper's initialisation. ``c`` must then lie strictly inside (1, 4).

    Deviations: the public "GCT" snippets (e.g. External-Attention-pytorch) compute
    ``exp(−ẑ²/2 · c)``, i.e. treat c as an inverse variance; this follows the paper (c is the std). When
    the channel spread is exactly zero (all channels share one mean) the variance is floored at eps² so
    the gradient of the square root stays finite; otherwise σ is exactly the paper's.

    Example:
        >>> m = GaussianContextTransformer(64)
        >>> m(torch.randn(2, 64, 7, 5)).shape
        torch.Size([2, 64, 7, 5])
    """

    __constants__ = ["learnable"]  # TorchScript compiles only the branch of std() that exists

    def __init__(
        self, channels: Optional[int] = None, c: float = 2.0, learnable: bool = False, eps: float = 1e-5
    ) -> None:
        super().__init__()
        self.channels = None if channels is None else check_int("channels", channels)
        c = check_positive_float("c", c)
        if not isinstance(learnable, bool):
            raise ValueError(f"learnable must be True or False, got {learnable!r}")
        self.eps = check_positive_float("eps", eps)
        self.learnable = learnable
        if learnable:
            if not _B1_BETA < c < _B1_BETA + _B1_ALPHA:
                raise ValueError(
                    f"c must lie in ({_B1_BETA}, {_B1_BETA + _B1_ALPHA}) when learnable=True "
                    f"(GCT-B1 keeps c = {_B1_ALPHA}·sigmoid(θ) + {_B1_BETA}), got {c!r}"
                )
            theta = math.log((c - _B1_BETA) / (_B1_BETA + _B1_ALPHA - c))  # sigmoid⁻¹((c − β) / α)
            self.theta = nn.Parameter(torch.tensor(theta))
        else:
            self.register_buffer("c", torch.tensor(c), persistent=False)

    def std(self) -> torch.Tensor:
        """The Gaussian's standard deviation c (a 0-dim tensor; differentiable for GCT-B1)."""
        if self.learnable:
            return 3.0 * torch.sigmoid(self.theta) + 1.0  # _B1_ALPHA, _B1_BETA (literals: TorchScript)
        return self.c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_feature_map(x, self.channels, "GaussianContextTransformer")
        context = x.mean(dim=(2, 3), keepdim=True)  # (B, C, H, W) -> (B, C, 1, 1)
        centred = context - context.mean(dim=1, keepdim=True)  # (B, C, 1, 1)
        variance = centred.pow(2).mean(dim=1, keepdim=True)  # (B, 1, 1, 1)
        sigma = torch.sqrt(variance.clamp_min(self.eps * self.eps)) + self.eps  # (B, 1, 1, 1)
        normalised = centred / sigma  # (B, C, 1, 1)
        c = self.std().to(x.dtype)
        gate = torch.exp(-normalised.pow(2) / (2 * c * c))  # (B, C, 1, 1)
        return x * gate

    def extra_repr(self) -> str:
        c = float(self.std())
        return f"channels={self.channels}, c={c:.4g}, learnable={self.learnable}, eps={self.eps}"
