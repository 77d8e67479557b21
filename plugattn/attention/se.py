"""Squeeze-and-Excitation (SE) channel attention.

Paper: Jie Hu, Li Shen, Gang Sun, "Squeeze-and-Excitation Networks", CVPR 2018.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn

from ..kernels.se_kernel import ACTIVATIONS, GATES, se, se_reference
from .._validate import check_choice, check_feature_map, check_int
from .registry import register_attention


@register_attention(
    "se",
    paper="Hu, Shen, Sun: Squeeze-and-Excitation Networks",
    venue="CVPR",
    year=2018,
)
class SELayer(nn.Module):
    """Squeeze-and-Excitation block (Hu et al., CVPR 2018).

    Computes, per the paper:

    * Eq. (2) squeeze: ``z_c = 1/(H W) * sum_{i,j} u_c(i, j)`` (global average pooling);
    * Eq. (3) excitation: ``s = sigmoid(W2 delta(W1 z))`` with ``W1: C -> C/r``, ``delta`` = ReLU,
      ``W2: C/r -> C``;
    * Eq. (4) scale: ``x~_c = s_c * u_c``.

    ``W1``/``W2`` are the 1x1 convolutions ``fc1``/``fc2`` (same names and shapes as torchvision's
    ``SqueezeExcitation``, so MobileNetV3 / EfficientNet checkpoints load by name). ``act="silu"`` and
    ``gate="hardsigmoid"`` give the variants used by EfficientNet and MobileNetV3. The hidden width is
    ``hidden_channels`` when given, else ``max(1, channel // reduction)`` (never 0, so narrow layers work).

    Args:
        channel: number of input channels C.
        reduction: reduction ratio r (paper default 16).
        hidden_channels: explicit hidden width (overrides ``reduction``).
        act: ``"relu"`` (paper) or ``"silu"``.
        gate: ``"sigmoid"`` (paper) or ``"hardsigmoid"``.
        bias: whether fc1 / fc2 have biases.

    Example:
        >>> se = SELayer(64)
        >>> se(torch.randn(2, 64, 8, 8)).shape
        torch.Size([2, 64, 8, 8])
    """

    def __init__(
        self,
        channel: int,
        reduction: int = 16,
        *,
        hidden_channels: Optional[int] = None,
        act: str = "relu",
        gate: str = "sigmoid",
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.channel = check_int("channel", channel)
        self.reduction = check_int("reduction", reduction)
        if hidden_channels is None:
            hidden = max(1, channel // reduction)
        else:
            hidden = check_int("hidden_channels", hidden_channels)
        self.hidden_channels = hidden
        self.act_name = check_choice("act", act, ACTIVATIONS)
        self.gate_name = check_choice("gate", gate, GATES)
        if not isinstance(bias, bool):
            raise ValueError(f"bias must be a bool, got {bias!r}")
        self.fc1 = nn.Conv2d(channel, hidden, 1, bias=bias)
        self.fc2 = nn.Conv2d(hidden, channel, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_feature_map(x, self.channel, "SELayer")
        # Eq. (2)-(4): squeeze (B, C, H, W) -> (B, C), excite -> (B, C), scale -> (B, C, H, W).
        # Triton squeeze/scale kernels on CUDA, the PyTorch reference elsewhere.
        if torch.jit.is_scripting():  # TorchScript runs the reference; eager dispatches to Triton
            return se_reference(x, self.fc1.weight, self.fc1.bias, self.fc2.weight, self.fc2.bias, self.act_name, self.gate_name)
        else:
            return se(
                x, self.fc1.weight, self.fc1.bias, self.fc2.weight, self.fc2.bias, act=self.act_name, gate=self.gate_name
            )

    def forward_gated(self, x: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        """``x + gate.view(1, C, 1, 1) * (self(x) - x)`` with a per-channel (C,) ``gate``, computed in
        the same fused kernels as :meth:`forward` (``gate = 0`` is the identity, ``1`` is SE).

        Example:
            >>> se = SELayer(8, reduction=4)
            >>> x = torch.randn(1, 8, 3, 3)
            >>> torch.equal(se.forward_gated(x, torch.zeros(8)), x)
            True
        """
        check_feature_map(x, self.channel, "SELayer")
        return se(
            x, self.fc1.weight, self.fc1.bias, self.fc2.weight, self.fc2.bias, act=self.act_name, gate=self.gate_name,
            gamma=gate,
        )

    def extra_repr(self) -> str:
        return f"channel={self.channel}, hidden={self.hidden_channels}, act={self.act_name}, gate={self.gate_name}"
