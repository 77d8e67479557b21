"""Pieces shared by several backbones: the input check of every backbone (:class:`ImageBackbone`),
channel rounding, conv-norm-act, stochastic depth, activation lookup. Built-in squeeze-excitation uses
:class:`plugattn.attention.se.SELayer`."""
from __future__ import annotations

import functools
from typing import Callable, List, Optional, Sequence, Tuple, Type, Union

import torch
import torch.fx
import torch.nn as nn

from ..._validate import check_choice

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
    sized to the grid); :func:`check_image_batch` calls it for them. Proxies pass through untouched.

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


def describe_sizes(fixed_hw: Optional[Tuple[int, int]], multiple: int) -> str:
    """The input sizes a backbone takes, in words.

    Example:
        >>> describe_sizes((224, 224), 1), describe_sizes(None, 64)
        ('H = W = 224 only', 'H, W multiples of 64')
    """
    if fixed_hw is not None:
        return f"H = W = {fixed_hw[0]} only" if fixed_hw[0] == fixed_hw[1] else f"H x W = {fixed_hw[0]}x{fixed_hw[1]} only"
    return "any H, W large enough for its downsampling" if multiple == 1 else f"H, W multiples of {multiple}"


def check_image_batch(x: torch.Tensor, in_chans: int, model: str, fixed_hw: Optional[Tuple[int, int]] = None,
                      multiple: int = 1) -> torch.Tensor:
    """Return ``x`` if it is a (B, in_chans, H, W) batch of a size ``model`` takes, else one clear error
    saying what the model expects: a ``TypeError`` for a non-tensor, a ``ValueError`` for a wrong rank
    (a 3-D image gets the hint to add the batch axis), a wrong channel count or a size the model cannot
    take (``fixed_hw``: defined for that size only; ``multiple``: H and W must be multiples of it).

    Every backbone calls it once, from :class:`ImageBackbone`'s ``forward``; it is ``torch.fx.wrap``-ed,
    so a traced model keeps it as one call node that runs on the real tensors.

    Example:
        >>> check_image_batch(torch.zeros(2, 3, 32, 32), 3, "ResNet").shape
        torch.Size([2, 3, 32, 32])
        >>> check_image_batch(torch.zeros(3, 224, 224), 3, "MlpMixer", fixed_hw=(224, 224))
        Traceback (most recent call last):
        ...
        ValueError: MlpMixer expects a (B, 3, H, W) batch with H = W = 224 only, got a 3-D input of shape (3, 224, 224): it lacks the batch axis; use x.unsqueeze(0)
    """
    if isinstance(x, torch.fx.Proxy):
        return x
    expects = f"{model} expects a (B, {in_chans}, H, W) batch with {describe_sizes(fixed_hw, multiple)}"
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{expects}, got {type(x).__name__}")
    shape = tuple(x.shape)
    if x.dim() != 4:
        hint = ""
        if x.dim() == 3 and shape[0] == in_chans:
            hint = ": it lacks the batch axis; use x.unsqueeze(0)"
        raise ValueError(f"{expects}, got a {x.dim()}-D input of shape {shape}{hint}")
    if shape[1] != in_chans:
        raise ValueError(
            f"{expects}, got {shape[1]} channels (input of shape {shape}); build the model with in_chans={shape[1]}"
            + (" or pass channels first (B, C, H, W)" if shape[3] == in_chans else "")
        )
    if fixed_hw is not None:
        return check_input_size(x, fixed_hw, model)
    if shape[2] % multiple or shape[3] % multiple:
        raise ValueError(f"{expects}, got a {shape[2]}x{shape[3]} input (input of shape {shape})")
    return x


torch.fx.wrap("check_image_batch")  # traced graphs keep the check as one node, run on real tensors


def _checking_input(forward: Callable) -> Callable:
    @functools.wraps(forward)
    def forward_with_input_check(self: "ImageBackbone", x: torch.Tensor, *args, **kwargs):
        x = check_image_batch(x, self.in_chans, type(self).__name__, self.input_hw, self.input_multiple)
        return forward(self, x, *args, **kwargs)

    return forward_with_input_check


class ImageBackbone(nn.Module):
    """The base of every backbone: its ``forward(x)`` first checks ``x`` with :func:`check_image_batch`
    -- once, here, for every model -- against ``in_chans`` and the sizes the model takes (``input_hw``
    for models defined at one size, ``input_multiple`` for models that need H, W divisible by it).

    A subclass's own ``forward`` is wrapped when the class is defined (``__init_subclass__``), so model
    code stays plain; ``forward_features`` takes what ``forward`` takes and is not checked again.

    Example:
        >>> class Tiny(ImageBackbone):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.in_chans = 1
        ...     def forward(self, x):
        ...         return x.mean((2, 3))
        >>> Tiny()(torch.zeros(2, 1, 5, 5)).shape
        torch.Size([2, 1])
        >>> Tiny()(torch.zeros(2, 3, 5, 5))
        Traceback (most recent call last):
        ...
        ValueError: Tiny expects a (B, 1, H, W) batch with any H, W large enough for its downsampling, got 3 channels (input of shape (2, 3, 5, 5)); build the model with in_chans=3
    """

    in_chans: int = 3
    input_hw: Optional[Tuple[int, int]] = None
    input_multiple: int = 1

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if "forward" in cls.__dict__:
            cls.forward = _checking_input(cls.__dict__["forward"])


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
