"""Checks shared by the mobile-CNN backbone tests (MobileNetV1/V2/V3, MnasNet, EfficientNet(V2),
MobileNeXt, GhostNet). Import with ``from mobile_checks import ...``."""
from __future__ import annotations

from typing import Callable, Mapping

import pytest
import torch
import torch.nn as nn

from plugattn.backbones import load_external_weights
from plugattn.testing import assert_rel_close, relative_error

WEIGHT_TOLERANCE = 1e-4


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def assert_param_count(model: nn.Module, reference: int, tolerance: float = 0.005) -> None:
    measured = count_params(model)
    assert abs(measured - reference) <= tolerance * reference, f"{measured} parameters, reference {reference}"


def assert_forward_backward(model: nn.Module, num_classes: int, size: int = 64) -> None:
    """Batch 2 in train mode: logits of the right shape, finite, and a gradient on every parameter."""
    model.train()
    x = torch.randn(2, 3, size, size)
    logits = model(x)
    assert logits.shape == (2, num_classes)
    assert torch.isfinite(logits).all()
    logits.square().mean().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None]
    assert not missing, f"no gradient for {missing[:5]}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def assert_heads(factory: Callable[..., nn.Module], pooled_width: int, feature_width: int, size: int = 64) -> None:
    """num_classes=7 gives 7 logits; num_classes=0 gives the pooled (pre-logit) features;
    forward_features is the (B, C, H/32, W/32) map."""
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        assert factory(num_classes=7).eval()(x).shape == (1, 7)
        headless = factory(num_classes=0).eval()
        assert headless.num_classes == 0
        assert headless(x).shape == (1, pooled_width)
        assert headless.forward_features(x).shape == (1, feature_width, size // 32, size // 32)
    assert factory().default_input_size == 224


def assert_in_chans(factory: Callable[..., nn.Module], size: int = 64) -> None:
    with torch.no_grad():
        assert factory(num_classes=3, in_chans=1).eval()(torch.randn(1, 1, size, size)).shape == (1, 3)


def assert_fx_matches(model: nn.Module, size: int = 64) -> None:
    model.eval()
    traced = torch.fx.symbolic_trace(model)
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        assert_rel_close(traced(x), model(x), what="fx-traced output")


def assert_deterministic_init(factory: Callable[..., nn.Module]) -> None:
    torch.manual_seed(123)
    first = factory(num_classes=10).state_dict()
    torch.manual_seed(123)
    second = factory(num_classes=10).state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)


def assert_inject_runs(model: nn.Module, block_class: str, expected_sites: int, size: int = 64) -> None:
    """``inject_attention(model, "eca", after=<block class>)`` hits every block and still runs."""
    try:
        from plugattn import inject_attention
    except ImportError:
        from plugattn.inject import inject_attention
    x = torch.randn(1, 3, size, size)
    injected = inject_attention(model.eval(), "eca", after=block_class, example_input=x)
    assert len(injected.injection_report.sites) == expected_sites
    assert all(site.site_class == block_class for site in injected.injection_report.sites)
    with torch.no_grad():
        assert injected(torch.randn(2, 3, size, size)).shape == model(torch.randn(2, 3, size, size)).shape


def assert_loads_reference(ours: nn.Module, reference: nn.Module, source: str, size: int = 64) -> None:
    """Copy the reference's random weights into ours; eval-mode outputs then agree."""
    reference.eval()
    load_external_weights(ours, reference.state_dict(), source)
    ours.eval()
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        error = relative_error(ours(x), reference(x))
    assert error <= WEIGHT_TOLERANCE, f"relative error {error} against {source}"


def assert_bad_load_raises(ours: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """A state_dict with a dropped key and a mis-shaped tensor is refused, naming both."""
    broken = dict(state_dict)
    dropped = next(k for k in broken if k.endswith("weight"))
    del broken[dropped]
    last_weight = [k for k in broken if k.endswith("weight")][-1]
    broken[last_weight] = torch.zeros(3, 3)
    with pytest.raises(ValueError, match="missing keys.*mis-shaped keys"):
        load_external_weights(ours, broken, source)


def assert_bad_arguments(factory: Callable[..., nn.Module]) -> None:
    with pytest.raises(ValueError, match="num_classes"):
        factory(num_classes=-1)
    with pytest.raises(ValueError, match="in_chans"):
        factory(in_chans=0)
    with pytest.raises(ValueError, match="width_mult"):
        factory(width_mult=0.0)
    with pytest.raises(ValueError, match="dropout"):
        factory(dropout=1.5)


def assert_backbone_contract(factory: Callable[..., nn.Module], pooled_width: int, feature_width: int) -> None:
    """The backbone contract in one call: heads (num_classes 7 / 0), in_chans, forward_features shape,
    default_input_size, FX trace == eager, deterministic init."""
    assert_heads(factory, pooled_width=pooled_width, feature_width=feature_width)
    assert_in_chans(factory)
    assert_fx_matches(factory(num_classes=10))
    assert_deterministic_init(factory)
