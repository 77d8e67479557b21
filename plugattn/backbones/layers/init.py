"""Weight initialisers of the backbones' reference code: ResNet-family Kaiming fan-out, the transformers'
truncated normal, LeCun normal and the MLP-Mixer / gMLP (Flax) scheme, and the mobile CNNs' scheme."""
from __future__ import annotations

import math
from typing import Tuple, Type

import torch
import torch.nn as nn

from ..._validate import check_choice

LINEAR_INITS = ("normal", "uniform", "goog", "default")


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


def init_mixer_weights(model: nn.Module) -> None:
    """Initialisation of the MLP-Mixer / gMLP reference code (Flax defaults, as timm's ``_init_weights``):
    Xavier-uniform Linear weights with N(0, 1e-6) biases inside MLPs (zero elsewhere), zero head,
    LeCun-normal convolutions, unit/zero LayerNorms. Modules with an ``init_weights`` method (gMLP's
    spatial gate) then set their own values.

    Example:
        >>> model = nn.Sequential(nn.Linear(4, 4)); init_mixer_weights(model); model[0].weight.abs().max() <= 1
        tensor(True)
    """
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            if name.startswith("head"):
                nn.init.zeros_(module.weight)
                nn.init.zeros_(module.bias)
                continue
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                if "mlp" in name:
                    nn.init.normal_(module.bias, std=1e-6)
                else:
                    nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Conv2d):
            lecun_normal_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    # after the generic pass, so a module's own values are not overwritten by the rule for its children
    for module in model.modules():
        if hasattr(module, "init_weights"):
            module.init_weights()


def init_mobile_weights(model: nn.Module, linear: str = "normal", group_fan_out: bool = False) -> None:
    """Initialise like the reference code of the mobile CNNs: convolutions He-normal over fan-out,
    BatchNorm to (1, 0), and linear layers by ``linear``:

    * ``"normal"``: N(0, 0.01), zero bias (torchvision MobileNetV2/V3, MobileNeXt);
    * ``"uniform"``: U(-1/sqrt(out), 1/sqrt(out)), zero bias (torchvision EfficientNet);
    * ``"goog"``: the TensorFlow TPU reference as timm writes it: U(-1/sqrt(out), 1/sqrt(out)) and
      ``group_fan_out=True`` (a grouped conv's fan-out is divided by its groups);
    * ``"default"``: leave linear layers at PyTorch's default.

    Example:
        >>> layer = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Flatten(), nn.Linear(8, 2))
        >>> init_mobile_weights(layer, linear="normal")
    """
    check_choice("linear", linear, LINEAR_INITS)
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
            if group_fan_out:
                fan_out //= module.groups
            nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan_out))
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear) and linear != "default":
            if linear == "normal":
                nn.init.normal_(module.weight, 0.0, 0.01)
            else:
                bound = 1.0 / math.sqrt(module.out_features)
                nn.init.uniform_(module.weight, -bound, bound)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
