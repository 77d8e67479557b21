"""Style-based Recalibration Module (SRM).

Paper: HyunJae Lee, Hyo-Eun Kim, Hyeonseob Nam, "SRM: A Style-based Recalibration Module for
Convolutional Neural Networks", ICCV 2019.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .._validate import check_batch_statistics, check_feature_map, check_int, check_positive_float
from .registry import register_attention


@register_attention(
    "srm",
    paper="Lee, Kim, Nam: SRM: A Style-based Recalibration Module for Convolutional Neural Networks",
    venue="ICCV",
    year=2019,
)
class SRM(nn.Module):
    """SRM (Lee et al., ICCV 2019), the three steps of the paper's Sec. 3:

    * style pooling: ``t_c = [mu_c, sigma_c]`` with ``mu_c = mean_HW(x_c)`` and
      ``sigma_c = sqrt(var_HW(x_c) + eps)``, the biased (1/HW) variance;
    * style integration: channel-wise fully connected (CFC) ``z_c = w_c . t_c`` (2 weights per channel,
      no bias; here a depthwise Conv1d with kernel 2, ``cfc``), BatchNorm, ``g = sigmoid(BN(z))``;
    * recalibration: ``x~_c = g_c * x_c``.

    The authors' code (github.com/hyunjaelee410/style-based-recalibration-module,
    ``models/recalibration_modules.py``, since its "FIX : style pooling" commit of 2019-08-02) computes
    sigma the same way, ``var + eps`` then ``sqrt``; the only difference is that its ``Tensor.var`` is the
    unbiased 1/(HW-1) estimate, which is NaN on a 1x1 map, where this module stays finite
    (sigma = sqrt(eps)). It stores the CFC as a zero-initialised (C, 2) parameter multiplied element-wise
    and summed: the same map as this depthwise Conv1d, also zero-initialised here.

    The BatchNorm normalises z over the batch, so training needs a batch of at least 2: batch 1 in
    train mode raises a ValueError saying so (eval mode is fine).

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
        if not torch.jit.is_scripting():  # TorchScript cannot compile the message-building check
            check_batch_statistics("SRM", x, [(self.bn, (0,))])  # z: (B, C, 1, 1)
        flat = x.flatten(2)  # (B, C, H, W) -> (B, C, HW)
        mean = flat.mean(dim=2, keepdim=True)  # style pooling: (B, C, 1)
        variance = (flat - mean).square().mean(dim=2, keepdim=True)  # (B, C, 1), biased
        std = torch.sqrt(variance + self.eps)  # (B, C, 1)
        style = torch.cat([mean, std], dim=2)  # (B, C, 2)
        integrated = self.cfc(style)  # style integration: (B, C, 2) -> (B, C, 1)
        gate = torch.sigmoid(self.bn(integrated.unsqueeze(-1)))  # (B, C, 1, 1)
        return x * gate  # recalibration
