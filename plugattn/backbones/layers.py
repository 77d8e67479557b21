"""Pieces shared by several backbones: channel rounding, conv-norm-act, stochastic depth,
activation lookup. Built-in squeeze-excitation uses :class:`plugattn.attention.se.SELayer`."""
from __future__ import annotations

from typing import Callable, List, Optional, Sequence, Tuple, Type, Union

import torch
import torch.nn as nn

from .._validate import check_choice

class QuickGELU(nn.Module):
    """``x * sigmoid(1.702 x)``: the sigmoid approximation of GELU (Hendrycks & Gimpel 2016, Sec. 2)
    that CLIP and the official CvT code use in place of ``nn.GELU``.

    Example:
        >>> round(QuickGELU()(torch.tensor([1.0])).item(), 4)
        0.8458
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


ACTIVATIONS = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "silu": nn.SiLU,
    "swish": nn.SiLU,
    "gelu": nn.GELU,
    "quick_gelu": QuickGELU,
    "hardswish": nn.Hardswish,
    "hardsigmoid": nn.Hardsigmoid,
    "sigmoid": nn.Sigmoid,
    "identity": nn.Identity,
}

ActSpec = Union[str, Type[nn.Module], None]


def make_divisible(value: float, divisor: int = 8, min_value: Optional[int] = None, round_limit: float = 0.9) -> int:
    """Round ``value`` to the nearest multiple of ``divisor``, never below ``round_limit`` of it
    (the rule of the TensorFlow MobileNet / EfficientNet reference code).

    Example:
        >>> make_divisible(37.5), make_divisible(16 * 1.1)
        (40, 16)
    """
    min_value = min_value or divisor
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < round_limit * value:
        rounded += divisor
    return rounded


def get_act(act: ActSpec, inplace: bool = False) -> nn.Module:
    """An activation module from a name (``"relu"``, ``"silu"``, ...), a class, or ``None`` (identity).

    Example:
        >>> get_act("silu")
        SiLU()
    """
    if act is None:
        return nn.Identity()
    if isinstance(act, str):
        cls = ACTIVATIONS[check_choice("act", act.lower(), list(ACTIVATIONS))]
    else:
        cls = act
    if inplace and cls in (nn.ReLU, nn.ReLU6, nn.SiLU, nn.Hardswish, nn.Hardsigmoid):
        return cls(inplace=True)
    return cls()


class ConvNormAct(nn.Sequential):
    """Conv2d -> BatchNorm2d -> activation, as a ``Sequential`` indexed 0, 1, 2 like torchvision's
    ``Conv2dNormActivation`` so its weights load without renaming.

    Example:
        >>> ConvNormAct(3, 16, 3, stride=2)(torch.randn(1, 3, 8, 8)).shape
        torch.Size([1, 16, 4, 4])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: Optional[int] = None,
        groups: int = 1,
        dilation: int = 1,
        act: ActSpec = "relu",
        norm: Optional[Callable[[int], nn.Module]] = nn.BatchNorm2d,
        bias: Optional[bool] = None,
        inplace: bool = True,
    ) -> None:
        if padding is None:
            padding = (kernel_size - 1) // 2 * dilation
        if bias is None:
            bias = norm is None
        layers = [nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias=bias)]
        if norm is not None:
            layers.append(norm(out_channels))
        if act is not None:
            layers.append(get_act(act, inplace=inplace))
        super().__init__(*layers)
        self.out_channels = out_channels


def drop_path(x: torch.Tensor, drop_prob: float = 0.0, training: bool = False) -> torch.Tensor:
    """Stochastic depth (Huang et al. ECCV'16): drop whole residual branches per sample, rescale the rest.

    Example:
        >>> drop_path(torch.ones(2, 3), 0.5, training=False).sum().item()
        6.0
    """
    if drop_prob == 0.0 or not training:
        return x
    keep_prob = 1.0 - drop_prob
    # one Bernoulli draw per sample, broadcast over every other dimension: (B, 1, 1, ...)
    mask_shape = (x.shape[0],) + (1,) * (x.dim() - 1)
    mask = x.new_empty(mask_shape).bernoulli_(keep_prob)
    return x * mask / keep_prob


class DropPath(nn.Module):
    """Module form of :func:`drop_path`.

    Example:
        >>> DropPath(0.1).eval()(torch.ones(2, 3)).shape
        torch.Size([2, 3])
    """

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= drop_prob < 1.0:
            raise ValueError(f"drop_prob must be in [0, 1), got {drop_prob!r}")
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.drop_prob, self.training)

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"


def lecun_normal_(weight: torch.Tensor) -> torch.Tensor:
    """LeCun normal init: truncated normal (at 2 std) with variance 1 / fan_in, the Flax default of the
    MLP-Mixer / gMLP reference code (timm's ``lecun_normal_``).

    Example:
        >>> float(lecun_normal_(torch.empty(64, 3, 4, 4)).abs().max()) <= 2 * (1 / 48) ** 0.5 / 0.8796
        True
    """
    fan_in = weight[0].numel()
    # 0.8796... is the std of a standard normal truncated to (-2, 2): divide it out to keep variance 1 / fan_in
    std = (1.0 / fan_in) ** 0.5 / 0.87962566103423978
    return nn.init.trunc_normal_(weight, std=std, a=-2.0 * std, b=2.0 * std)


def check_input_size(x: torch.Tensor, expected: Tuple[int, int], model: str) -> torch.Tensor:
    """Return ``x`` if its spatial size is ``expected`` (H, W), else ``ValueError`` naming both sizes.

    For models defined at one input size (token-mixing MLPs sized to the patch count, global filters
    sized to the grid). Call it through ``torch.fx.wrap`` in the model's module so a traced model keeps
    the check as one call node (it then runs on real tensors); proxies pass through untouched.

    Example:
        >>> check_input_size(torch.zeros(1, 3, 224, 224), (224, 224), "MlpMixer").shape
        torch.Size([1, 3, 224, 224])
    """
    if isinstance(x, torch.fx.Proxy):
        return x
    if x.dim() != 4 or tuple(x.shape[2:]) != tuple(expected):
        raise ValueError(
            f"{model} is defined for {expected[0]}x{expected[1]} inputs only (its token mixing is sized to "
            f"that patch grid), got input of shape {tuple(x.shape)}; resize the input to "
            f"{expected[0]}x{expected[1]} or build the model with img_size set to your size"
        )
    return x


def init_kaiming_fan_out_(model: nn.Module, zero_linear_bias: bool = False) -> nn.Module:
    """The ResNet-family init (He et al., ICCV 2015, as in torchvision's ResNet and the WRN /
    PyramidNet reference code): Kaiming-normal conv weights (fan_out, ReLU gain), BatchNorm /
    GroupNorm scale 1 and shift 0; optionally zero linear biases. In place; returns ``model``.

    Example:
        >>> bn = init_kaiming_fan_out_(nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8)))[1]
        >>> float(bn.weight.detach().min()), float(bn.bias.detach().max())
        (1.0, 0.0)
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and zero_linear_bias and m.bias is not None:
            nn.init.zeros_(m.bias)
    return model


def init_trunc_normal_(model: nn.Module, types: Tuple[Type[nn.Module], ...] = (nn.Linear,), std: float = 0.02) -> nn.Module:
    """The usual vision-transformer init (timm / DeiT / PVT / CSWin reference code): weights of every
    module of ``types`` from a truncated normal with ``std`` (cut at +-2 absolute), biases zero. In place.

    Example:
        >>> layer = init_trunc_normal_(nn.Sequential(nn.Linear(4, 4)))
        >>> layer[0].bias.detach().abs().sum().item()
        0.0
    """
    for module in model.modules():
        if isinstance(module, types):
            nn.init.trunc_normal_(module.weight, std=std)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)
    return model


def linear_drop_path_rates(drop_path_rate: float, num_blocks: int) -> List[float]:
    """Stochastic-depth rates rising linearly from 0 at the first block to ``drop_path_rate`` at the
    last (the schedule of Huang et al. used by DeiT, Swin, ConvNeXt, ...). Pure Python, so models
    also build on the ``meta`` device.

    Example:
        >>> linear_drop_path_rates(0.2, 3)
        [0.0, 0.1, 0.2]
    """
    return [drop_path_rate * index / max(num_blocks - 1, 1) for index in range(num_blocks)]


def check_per_stage(num_stages: int, **per_stage: Sequence) -> None:
    """``ValueError`` unless every per-stage list (dims, depths, heads, ...) has ``num_stages`` entries,
    naming all of them and what was given.

    Example:
        >>> check_per_stage(2, dims=(8, 16), depths=(1, 1))
    """
    if any(len(values) != num_stages for values in per_stage.values()):
        given = ", ".join(f"{name}={list(values)}" for name, values in per_stage.items())
        raise ValueError(f"{', '.join(per_stage)} need {num_stages} entries (one per stage), got {given}")
