"""SimAM: a simple, parameter-free attention module.

Paper: Lingxiao Yang, Ru-Yuan Zhang, Lida Li, Xiaohua Xie, "SimAM: A Simple, Parameter-Free Attention
Module for Convolutional Neural Networks", ICML 2021.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn

from ..kernels.simam_kernel import simam, simam_reference
from .._validate import check_feature_map, check_int, check_positive_float
from .registry import register_attention


@register_attention(
    "simam",
    aliases=("simam_module",),
    paper="Yang, Zhang, Li, Xie: SimAM: A Simple, Parameter-Free Attention Module for CNNs",
    venue="ICML",
    year=2021,
)
class SimAM(nn.Module):
    """SimAM (Yang et al., ICML 2021): parameter-free 3-D attention from a per-neuron energy.

    For every channel of ``x`` with mean μ over its H·W neurons and n = H·W − 1 (Eq. 5 and the code in
    Fig. 3 of the paper)::

        d      = (x − μ)²
        σ̂²     = Σ_HW d / n
        E_inv  = d / (4 (σ̂² + λ)) + 0.5          # 1 / e_t*, the inverse minimal energy
        y      = x · sigmoid(E_inv)

    ``channels`` is optional (the module is channel-agnostic); when given it is checked against the input.
    There are no parameters. On 1×1 maps n is clamped to 1 (the paper's 0/0 variance becomes 0), so y = x·σ(0.5).

    Example:
        >>> m = SimAM(64)
        >>> m(torch.randn(2, 64, 7, 5)).shape
        torch.Size([2, 64, 7, 5])
    """

    def __init__(self, channels: Optional[int] = None, e_lambda: float = 1e-4) -> None:
        super().__init__()
        self.channels = None if channels is None else check_int("channels", channels)
        self.e_lambda = check_positive_float("e_lambda", e_lambda)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_feature_map(x, self.channels, "SimAM")
        # fused Triton kernel on CUDA, the PyTorch reference (the equations above) elsewhere
        if torch.jit.is_scripting():  # TorchScript runs the reference; eager dispatches to Triton
            return simam_reference(x, self.e_lambda)
        else:
            return simam(x, self.e_lambda)  # (B, C, H, W)

    def forward_gated(self, x: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        """``x + gate.view(1, C, 1, 1) * (self(x) - x)`` with a per-channel (C,) ``gate``, computed in
        the same fused kernels as :meth:`forward` (``gate = 0`` is the identity, ``1`` is SimAM).

        Example:
            >>> x = torch.randn(1, 8, 3, 3)
            >>> torch.equal(SimAM().forward_gated(x, torch.zeros(8)), x)
            True
        """
        check_feature_map(x, self.channels, "SimAM")
        return simam(x, self.e_lambda, gamma=gate)  # (B, C, H, W)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, e_lambda={self.e_lambda}"


simam_module = SimAM  # the classic pytorch-attention name (simam.py)
