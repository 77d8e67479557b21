"""ECA: Efficient Channel Attention.

Wang, Wu, Zhu, Li, Zuo, Hu, "ECA-Net: Efficient Channel Attention for Deep Convolutional Neural
Networks", CVPR 2020.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn as nn

from ..kernels.eca_kernel import eca, eca_reference
from .._validate import check_feature_map, check_int, check_positive_float
from .registry import register_attention


def eca_kernel_size(channels: int, gamma: float = 2.0, b: float = 1.0) -> int:
    """Adaptive 1-D kernel size of ECA, paper Eq. 12: k = |(log2 C + b) / gamma|_odd.

    As the official code: t = int(|(log2 C + b) / gamma|), k = t if t is odd else t + 1
    (so k = 3 at C = 64, 5 at C = 256, 7 at C = 2048 with gamma = 2, b = 1).

    Example:
        >>> [eca_kernel_size(c) for c in (64, 256, 2048)]
        [3, 5, 7]
    """
    check_int("channels", channels)
    t = int(abs((math.log2(channels) + b) / gamma))
    return t if t % 2 == 1 else t + 1


@register_attention(
    "eca",
    aliases=("eca_layer", "ecalayer"),
    paper="Wang et al., ECA-Net: Efficient Channel Attention for Deep Convolutional Neural Networks",
    venue="CVPR",
    year=2020,
)
class ECALayer(nn.Module):
    """Efficient Channel Attention (Wang et al., CVPR 2020, Sec. 3.2 / Fig. 2).

    y = GAP(x); s = sigmoid(conv1d_k(y)) with the 1-D convolution running across the channel axis
    (1 in, 1 out, zero padding k // 2, no bias -- as the official code); output x * s.
    k follows Eq. 12 (see :func:`eca_kernel_size`) unless ``k_size`` is given. Parameters: k.

    Args:
        channels: C, the number of input channels.
        gamma, b: constants of the adaptive kernel-size mapping (paper: 2 and 1).
        k_size: explicit odd kernel size, overriding the adaptive one.

    Example:
        >>> eca = ECALayer(64)
        >>> eca.k_size, eca(torch.randn(2, 64, 8, 8)).shape
        (3, torch.Size([2, 64, 8, 8]))
    """

    def __init__(self, channels: int, gamma: float = 2, b: float = 1, k_size: Optional[int] = None) -> None:
        super().__init__()
        self.channels = check_int("channels", channels)
        check_positive_float("gamma", gamma)
        if isinstance(b, bool) or not isinstance(b, (int, float)) or not math.isfinite(b):
            raise ValueError(f"b must be a finite number, got {b!r}")
        if k_size is None:
            k_size = eca_kernel_size(channels, gamma, b)
        else:
            check_int("k_size", k_size)
            if k_size % 2 == 0:
                raise ValueError(f"k_size must be a positive odd integer, got {k_size!r}")
        self.k_size = k_size
        self.conv = nn.Conv1d(1, 1, kernel_size=k_size, padding=k_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_feature_map(x, self.channels, "ECALayer")
        # pool -> conv1d across channels -> sigmoid -> scale: one fused Triton kernel on CUDA,
        # the PyTorch reference (the same steps) elsewhere
        if torch.jit.is_scripting():  # TorchScript runs the reference; eager dispatches to Triton
            return eca_reference(x, self.conv.weight)
        else:
            return eca(x, self.conv.weight)  # (B, C, H, W)

    def forward_gated(self, x: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        """``x + gate.view(1, C, 1, 1) * (self(x) - x)`` with a per-channel (C,) ``gate``, computed in
        the same fused kernels as :meth:`forward` (``gate = 0`` is the identity, ``1`` is ECA).

        Example:
            >>> eca = ECALayer(8)
            >>> x = torch.randn(1, 8, 3, 3)
            >>> torch.equal(eca.forward_gated(x, torch.zeros(8)), x)
            True
        """
        check_feature_map(x, self.channels, "ECALayer")
        return eca(x, self.conv.weight, gamma=gate)  # (B, C, H, W)
