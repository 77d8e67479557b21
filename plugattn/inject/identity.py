"""``init="identity"``: attention that starts as the identity, so a pretrained host computes exactly
what it computed before, and then learns.

Mechanism (ReZero, Bachlechner et al. 2020; LayerScale, Touvron et al. 2021): every inserted
attention ``attn`` is wrapped in an :class:`IdentityGate` that applies only a learnable fraction of
the change it makes to the features,

    y = x + gamma * (attn(x) - x),    gamma: one value per channel, zeros at insertion.

* **Per channel, not scalar**: each channel's recalibration opens at its own pace (LayerScale's
  argument); it costs C parameters per site (ResNet-50, 16 bottleneck sites: 15,104, 0.06 %).
* **Exact**: ``gamma * (a - x)`` is +0.0 or -0.0 for every finite ``a - x``, and ``x + (+0.0)`` is not
  always ``x`` (``-0.0 + 0.0 == +0.0`` in IEEE arithmetic), so the sum is written
  ``x - (0.0 - change)``: ``0.0 - (+-0.0)`` is +0.0 and ``x - (+0.0)`` is ``x`` bit for bit, -0.0
  included; for a nonzero change it is ``x + change`` exactly. (``(1 - gamma) * x + gamma * a`` has
  the same flaw and rounds differently once gamma moves; it is not used.) Non-finite attention
  outputs give NaN, as ``0 * inf`` does.
* **Learning**: at step 0 the gradient reaches gamma (``dy/dgamma = a - x``) but not the attention
  (``dy/da = gamma = 0``); after one optimizer step gamma is nonzero and every attention parameter
  gets its gradient.
* **Already the identity**: a module that computes ``attn(x) == x`` at initialisation (GC with add
  fusion zero-initialises its last convolution, GCT its gate; or a user module; checked on a random
  map of the site's shape) is inserted ungated. Gating it
  would freeze it: ``a - x = 0`` gives gamma no gradient and ``gamma = 0`` gives the attention none.
* **Zero-initialised layers under a gate** (SRM's style integration, GC's last convolution with mul
  fusion) only existed to start the block gently; under a closed gate they would delay learning by
  another step (SRM's BatchNorm weight has no gradient while its input is 0), so a gated module's
  Conv/Linear layers whose weight is all zeros get PyTorch's default initialisation.

State-dict keys: a gated site ``layer1.0.eca`` holds ``layer1.0.eca.gamma`` and the attention's own
keys under ``layer1.0.eca.attention.`` (``layer1.0.eca.attention.conv.weight``); an ungated site
keeps the ``init="default"`` keys.
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Any, Callable

import torch
import torch.nn as nn

from ..attention.registry import AttentionSpec, create_attention
from .report import InjectionSite
from .shapes import inference_run

INITS = ("default", "identity")


class IdentityGate(nn.Module):
    """``y = x + gamma * (attention(x) - x)`` with a per-channel ``gamma`` that starts at zero.

    When ``attention`` has ``forward_gated(x, gate)`` (the fused SE / ECA / SimAM kernels), the gate is
    applied in that pass; the wrapper computes it itself when the module has none, or when forward
    hooks are registered on it (so they run).

    Args:
        attention: the module whose change of the features is gated; maps (B, C, H, W) to (B, C, H, W).
        channels: C.

    Example:
        >>> from plugattn.attention import SELayer
        >>> gate = IdentityGate(SELayer(8, reduction=4), 8)
        >>> x = torch.randn(2, 8, 5, 5)
        >>> torch.equal(gate(x), x), [name for name, _ in gate.named_parameters()][:2]
        (True, ['gamma', 'attention.fc1.weight'])
    """

    def __init__(self, attention: nn.Module, channels: int) -> None:
        super().__init__()
        self.attention = attention
        self.gamma = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fused = getattr(self.attention, "forward_gated", None)
        if fused is not None and not _has_forward_hooks(self.attention):
            return fused(x, self.gamma)
        gamma = self.gamma.to(dtype=x.dtype).view(1, -1, 1, 1)  # (C,) -> (1, C, 1, 1)
        change = gamma * (self.attention(x) - x)  # (B, C, H, W)
        return x - (0.0 - change)  # x + change, and exactly x where change is +-0.0 (see the module docstring)

    def extra_repr(self) -> str:
        return f"channels={self.gamma.numel()}"


def _has_forward_hooks(module: nn.Module) -> bool:
    return bool(module._forward_hooks or module._forward_pre_hooks)


class IdentityInit:
    """Factory ``(channels, **kwargs) -> IdentityGate`` around an attention spec (see :func:`identity_factory`)."""

    def __init__(self, attention: AttentionSpec) -> None:
        self.attention = attention

    def __call__(self, channels: int, **kwargs: Any) -> IdentityGate:
        return IdentityGate(create_attention(self.attention, channels, **kwargs), channels)


def identity_factory(attention: AttentionSpec) -> Callable[..., nn.Module]:
    """The factory ``inject_attention(init="identity")`` builds each site's module with.

    Example:
        >>> type(identity_factory("eca")(64)).__name__
        'IdentityGate'
    """
    return IdentityInit(attention)


def starts_as_identity(module: nn.Module, feature_map: torch.Tensor) -> bool:
    """Whether ``module`` returns a random map shaped like ``feature_map`` unchanged, in eval and in
    train mode (on a copy, so no running statistics move). Random, not the site's own map: that can
    be degenerate (timm's ResNet branches are exactly 0 at init, zero_init_last), and every
    attention returns 0 for 0. A module that fails in train mode on the probe counts as not.

    Example:
        >>> from plugattn.attention import GCModule, SELayer
        >>> x = torch.randn(2, 16, 4, 4)
        >>> starts_as_identity(GCModule(16, reduction=4), x), starts_as_identity(SELayer(16), x)
        (True, False)
    """
    probe_input = torch.randn(feature_map.shape, generator=torch.Generator().manual_seed(0)).to(feature_map)
    with inference_run(module):
        if not torch.equal(module(probe_input), probe_input):
            return False
    probe = copy.deepcopy(module).train()
    try:
        with torch.no_grad():
            return torch.equal(probe(probe_input), probe_input)
    except (RuntimeError, ValueError):  # e.g. BatchNorm on one 1x1 sample
        return False


def settle_gate(module: nn.Module, feature_map: torch.Tensor) -> nn.Module:
    """For an :class:`IdentityGate` about to be inserted at a site whose input is ``feature_map``:
    the bare attention when it is already the identity (:func:`starts_as_identity`), else the gate, with zero-initialised
    Conv/Linear weights of the attention re-initialised (see the module docstring). Anything else
    is returned as is.

    Example:
        >>> from plugattn.attention import GCModule, SRM
        >>> x = torch.randn(2, 16, 4, 4)
        >>> type(settle_gate(IdentityGate(GCModule(16, reduction=4), 16), x)).__name__
        'GCModule'
        >>> bool(settle_gate(IdentityGate(SRM(16), 16), x).attention.cfc.weight.any())
        True
    """
    if not isinstance(module, IdentityGate):
        return module
    if starts_as_identity(module.attention, feature_map):
        return module.attention
    for layer in module.attention.modules():
        if isinstance(layer, (nn.modules.conv._ConvNd, nn.Linear)) and not layer.weight.any():
            layer.reset_parameters()
    return module


def record_init(site: InjectionSite, model: nn.Module, init: str) -> InjectionSite:
    """``site`` with its init mode and gate cost; a gated site names the attention's own class.

    Example:
        >>> site = InjectionSite("0", "Conv2d", "after", 8, "gate", "IdentityGate", 11)
        >>> record_init(site, nn.ModuleDict({"gate": IdentityGate(nn.Conv2d(8, 8, 1), 8)}), "identity")
        InjectionSite(site='0', site_class='Conv2d', position='after', channels=8, attention='gate', attention_class='Conv2d', params=11, shape=(), attached='', hooked='', channels_last=False, init='identity', gate_params=8)
    """
    module = model.get_submodule(site.attention)
    if isinstance(module, IdentityGate):
        return dataclasses.replace(
            site, attention_class=type(module.attention).__name__, init=init, gate_params=module.gamma.numel()
        )
    return dataclasses.replace(site, init=init)
