"""The mobile inverted bottleneck (MBConv) shared by MobileNetV3, MnasNet, EfficientNet and EfficientNetV2.

Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018 (Table 1: 1x1
expansion + activation, kxk depthwise + activation, linear 1x1 projection, identity shortcut when the
shape is kept); Hu et al. (CVPR 2018) squeeze-excitation after the depthwise conv as added by MnasNet
(Tan et al., CVPR 2019) and MobileNetV3 (Howard et al., ICCV 2019); stochastic depth on the residual
branch as EfficientNet (Tan & Le, ICML 2019) trains it.

The layout is torchvision's: ``block`` is a ``Sequential`` of [expand ConvNormAct (only when the width
changes), depthwise ConvNormAct, SELayer (optional), projection ConvNormAct without activation], so
torchvision MobileNetV3 / EfficientNet checkpoints load by name.
"""
from __future__ import annotations

from typing import Callable, List, Optional

import torch
import torch.nn as nn

from ..._validate import check_int
from ...attention.se import SELayer
from .checks import check_block_args, check_probability
from .activations import ActSpec
from .conv import ConvNormAct
from .drop import DropPath


class StochasticResidual(nn.Module):
    """Shared frame of :class:`MBConv` and EfficientNetV2's ``FusedMBConv``: ``block`` (a ``Sequential``)
    plus an identity shortcut, with stochastic depth on the branch, when the stride is 1 and the width kept.

    Subclasses build their layers and call :meth:`set_block`.

    Example:
        >>> issubclass(MBConv, StochasticResidual)
        True
    """

    def set_block(self, layers: List[nn.Module], in_channels: int, out_channels: int, stride: int,
                  drop_path_rate: float) -> None:
        """Register ``block``, the shortcut rule and the stochastic depth (in torchvision's module order)."""
        self.block = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_channels == out_channels
        self.stochastic_depth = DropPath(drop_path_rate)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)  # (B, C_in, H, W) -> (B, C_out, H/s, W/s)
        if self.use_residual:
            out = self.stochastic_depth(out) + x
        return out


class MBConv(StochasticResidual):
    """Mobile inverted bottleneck: ``x + DropPath(project(SE(depthwise(expand(x)))))``.

    Args:
        in_channels: input width.
        out_channels: output width.
        kernel_size: depthwise kernel (3 or 5 in the mobile nets).
        stride: depthwise stride (1 or 2).
        expanded_channels: width inside the block; ``in_channels`` (the default) skips the expansion conv.
        act: activation after the expansion and depthwise convs.
        se_hidden_channels: hidden width of the built-in SE; ``None`` means no SE.
        se_act / se_gate: SE activation and gate (see :class:`plugattn.attention.se.SELayer`).
        drop_path_rate: stochastic-depth probability of the residual branch.
        norm: normalisation layer factory.

    Example:
        >>> block = MBConv(16, 16, expanded_channels=64, se_hidden_channels=4)
        >>> block(torch.randn(2, 16, 8, 8)).shape
        torch.Size([2, 16, 8, 8])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        kernel_size: int = 3,
        stride: int = 1,
        expanded_channels: Optional[int] = None,
        act: ActSpec = "relu",
        se_hidden_channels: Optional[int] = None,
        se_act: str = "relu",
        se_gate: str = "sigmoid",
        drop_path_rate: float = 0.0,
        norm: Callable[[int], nn.Module] = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        check_block_args(in_channels, out_channels, stride)
        check_int("kernel_size", kernel_size)
        expanded = in_channels if expanded_channels is None else check_int("expanded_channels", expanded_channels)
        check_probability("drop_path_rate", drop_path_rate)

        layers: List[nn.Module] = []
        self.has_expand = expanded != in_channels
        if self.has_expand:
            # (B, C_in, H, W) -> (B, C_exp, H, W)
            layers.append(ConvNormAct(in_channels, expanded, 1, act=act, norm=norm))
        # (B, C_exp, H, W) -> (B, C_exp, H/s, W/s)
        layers.append(ConvNormAct(expanded, expanded, kernel_size, stride, groups=expanded, act=act, norm=norm))
        self.has_se = se_hidden_channels is not None
        if self.has_se:
            layers.append(SELayer(expanded, hidden_channels=se_hidden_channels, act=se_act, gate=se_gate))
        # linear bottleneck: no activation after the projection (MobileNetV2, Sec. 3.2)
        layers.append(ConvNormAct(expanded, out_channels, 1, act=None, norm=norm))
        self.set_block(layers, in_channels, out_channels, stride, drop_path_rate)
