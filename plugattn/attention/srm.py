"""Style-based Recalibration Module (SRM).

Paper: HyunJae Lee, Hyo-Eun Kim, Hyeonseob Nam, "SRM: A Style-based Recalibration Module for
Convolutional Neural Networks", ICCV 2019.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .._validate import check_feature_map, check_int, check_positive_float
from .registry import register_attention


@register_attention(
    "srm",
    paper="Lee, Kim, Nam: SRM: A Style-based Recalibration Module for Convolutional Neural Networks",
    venue="ICCV",
    year=2019,
)
class SRM(nn.Module):
    """SRM (Lee et al., ICCV 2019).

    * style pooling: ``t_c = [mu_c, sigma_c]`` with ``mu_c = mean_HW(x_c)`` and
      ``sigma_c = sqrt(mean_HW((x_c - mu_c)^2) + eps)``;
    * style integration: channel-wise fully connected (CFC) ``z_c = w_c . t_c`` (2 weights per channel,
      no bias; here a depthwise Conv1d with kernel 2, ``cfc``), BatchNorm, ``g = sigmoid(BN(z))``;
    * recalibration: ``x~_c = g_c * x_c``.

    (Step names follow the paper's Sec. 3; equation numbers are not cited because we could not check them
    against the paper text.) The authors' code (github.com/hyunjaelee410/style-based-recalibration-module,
    ``models/recalibration_modules.py``) stores CFC as a zero-initialised (C, 2) parameter multiplied
    element-wise and summed -- the same map as this depthwise Conv1d, also zero-initialised here -- and
    takes sigma with ``Tensor.std``: the unbiased 1/(HW-1) estimate without eps, NaN on 1x1 maps. We use
    the biased 1/HW variance, defined on 1x1 maps, with eps = 1e-5 inside the square root so the gradient
    stays finite.
    The BatchNorm normalises z over the batch, so training mode needs more than one sample (PyTorch
    raises a ValueError for a single 1x1 sample in train); eval works for any batch.

    Args:
        channel: number of input channels C.
        eps: added to the variance before the square root.

    Example:
        >>> SRM(64)(torch.randn(2, 64, 8, 8)).shape
        torch.Size([2, 64, 8, 8])
    """

    def __init__(self, channel: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.channel = check_int("channel", channel)
        self.eps = check_positive_float("eps", eps)
        self.cfc = nn.Conv1d(channel, channel, kernel_size=2, groups=channel, bias=False)
        nn.init.zeros_(self.cfc.weight)
        self.bn = nn.BatchNorm2d(channel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_feature_map(x, self.channel, "SRM")
        flat = x.flatten(2)  # (B, C, H, W) -> (B, C, HW)
        mean = flat.mean(dim=2, keepdim=True)  # Eq. (1): (B, C, 1)
        variance = (flat - mean).square().mean(dim=2, keepdim=True)  # (B, C, 1), biased
        std = torch.sqrt(variance + self.eps)  # Eq. (2): (B, C, 1)
        style = torch.cat([mean, std], dim=2)  # (B, C, 2)
        integrated = self.cfc(style)  # Eq. (3): (B, C, 2) -> (B, C, 1)
        gate = torch.sigmoid(self.bn(integrated.unsqueeze(-1)))  # Eq. (4)-(5): (B, C, 1, 1)
        return x * gate  # Eq. (6)
