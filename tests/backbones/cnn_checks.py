"""Checks shared by the CNN backbone tests (ResNet, DenseNet, ConvNeXt, NIN, WRN, PyramidNet, Res2Net).

Large models are built on the ``meta`` device where only shapes matter (parameter counts,
``num_classes`` / ``in_chans`` variants), and materialised with seeded random values where
numbers matter but the paper init does not (weight-loading against torchvision / timm).
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import pytest
import torch
import torch.fx
import torch.nn as nn

from plugattn.backbones import load_external_weights
from plugattn.testing import assert_rel_close, relative_error

LOAD_TOLERANCE = 1e-4  # the backbone contract: outputs after loading external weights match to 1e-4


@pytest.fixture(scope="module")
def x32() -> torch.Tensor:
    """A seeded CIFAR-sized batch of 2 (import the fixture into a test module to use it)."""
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def x64() -> torch.Tensor:
    """A seeded small ImageNet-model batch of 2."""
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def on_meta(factory: Callable[..., nn.Module], **kwargs) -> nn.Module:
    """Build without allocating or initialising weights (shapes and counts only)."""
    with torch.device("meta"):
        return factory(**kwargs)


def randomize_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every parameter and buffer a seeded random value of a sensible scale, so a copy that
    drops or misplaces any tensor changes the output (BN statistics, norm scales, layer scales
    and zero-initialised residual gammas included)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
            if not tensor.is_floating_point():
                continue
            leaf = name.rsplit(".", 1)[-1]
            if leaf == "running_var":
                value = 0.5 + torch.rand(tensor.shape, generator=generator)
            elif leaf in ("layer_scale", "gamma"):
                value = 0.1 * (0.5 + torch.rand(tensor.shape, generator=generator))
            elif tensor.dim() > 1:
                fan_in = tensor[0].numel()
                value = torch.randn(tensor.shape, generator=generator) / math.sqrt(fan_in)
            elif leaf == "weight":  # norm scales
                value = 0.5 + torch.rand(tensor.shape, generator=generator)
            else:  # biases, running means
                value = 0.1 * torch.randn(tensor.shape, generator=generator)
            tensor.copy_(value.to(tensor.dtype))
    return model


def materialize_random(factory: Callable[..., nn.Module], seed: int = 0, **kwargs) -> nn.Module:
    """Build on meta, allocate on CPU, fill with :func:`randomize_` (fast for 60M+ parameter models)."""
    model = on_meta(factory, **kwargs).to_empty(device="cpu")
    return randomize_(model, seed).eval()


def check_reference_layout(factory: Callable[..., nn.Module], reference_factory: Callable[..., nn.Module],
                           reference_params: int) -> None:
    """Ours and the reference both have ``reference_params`` parameters and the same state_dict
    keys, in the same order, with the same shapes."""
    ours, theirs = on_meta(factory), on_meta(reference_factory)
    assert count_params(ours) == reference_params
    assert count_params(theirs) == reference_params
    ours_sd, theirs_sd = ours.state_dict(), theirs.state_dict()
    assert list(ours_sd) == list(theirs_sd)
    assert all(ours_sd[k].shape == theirs_sd[k].shape for k in ours_sd)


def check_param_count(model: nn.Module, reference: int, rel_tol: float = 0.005) -> None:
    count = count_params(model)
    assert abs(count - reference) <= rel_tol * reference, f"{count:,} parameters, reference {reference:,}"


def check_forward_backward(model: nn.Module, x: torch.Tensor, num_classes: int) -> None:
    """Train-mode forward on a batch of 2, then every parameter receives a finite gradient."""
    model.train()
    model.zero_grad(set_to_none=True)
    out = model(x)
    assert out.shape == (x.shape[0], num_classes)
    assert out.dtype == x.dtype and torch.isfinite(out).all()
    out.square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"no gradient reached {name}"
        assert torch.isfinite(p.grad).all(), f"non-finite gradient in {name}"
    model.zero_grad(set_to_none=True)


def check_fx_matches_eager(model: nn.Module, x: torch.Tensor) -> None:
    model.eval()
    traced = torch.fx.symbolic_trace(model)
    with torch.no_grad():
        expected = model(x)
        assert_rel_close(traced(x), expected, what="fx-traced output")


def check_head_variants(factory: Callable[..., nn.Module], x: torch.Tensor, num_features: int,
                        feature_hw: Optional[tuple] = None) -> None:
    """num_classes=0 gives pooled features; other counts and in_chans are honoured (shape-only, on meta)."""
    x = x.to("meta")
    headless = on_meta(factory, num_classes=0)
    assert headless(x).shape == (x.shape[0], num_features)
    features = headless.forward_features(x)
    assert features.shape[:2] == (x.shape[0], num_features)
    if feature_hw is not None:
        assert tuple(features.shape[2:]) == feature_hw
    assert on_meta(factory, num_classes=7)(x).shape == (x.shape[0], 7)
    gray = x[:, :1]
    assert on_meta(factory, num_classes=5, in_chans=1)(gray).shape == (x.shape[0], 5)


def check_deterministic_init(factory: Callable[..., nn.Module], **kwargs) -> None:
    """Same seed, same weights; another seed, other weights."""
    states = []
    for seed in (0, 0, 1):
        torch.manual_seed(seed)
        states.append(factory(**kwargs).state_dict())
    for key, value in states[0].items():
        assert torch.equal(value, states[1][key]), f"{key} differs between two builds with one seed"
    assert any(
        not torch.equal(value, states[2][key]) for key, value in states[0].items() if value.is_floating_point()
    ), "a different seed gave identical weights"


def check_load_matches(ours: nn.Module, reference: nn.Module, source: str, x: torch.Tensor) -> None:
    """Copy the reference's (random) weights into ours; eval outputs then agree to 1e-4."""
    reference.eval()
    load_external_weights(ours, reference.state_dict(), source)
    ours.eval()
    with torch.no_grad():
        expected = reference(x)
        actual = ours(x)
    err = relative_error(actual, expected)
    assert err <= LOAD_TOLERANCE, f"{source} weights: relative error {err:.2e} > {LOAD_TOLERANCE:.0e}"


def check_random_reference_loads(factory: Callable[..., nn.Module], reference_factory: Callable[..., nn.Module],
                                 source: str, x: torch.Tensor, seed: int = 3) -> None:
    """Build the reference with seeded random weights, load them into ours, compare outputs."""
    reference = materialize_random(reference_factory, seed=seed)
    ours = on_meta(factory).to_empty(device="cpu")
    check_load_matches(ours, reference, source, x)


def check_injection(model: nn.Module, block: str, x: torch.Tensor, expected_sites: int,
                    attention: str = "eca") -> None:
    """inject_attention after every ``block`` traces the model (fx mode) and the result still runs."""
    from plugattn.inject import inject_attention

    model.eval()
    injected = inject_attention(model, attention, after=block, example_input=x)
    report = injected.injection_report
    assert report.mode == "fx", report.fallback_reason
    assert len(report.sites) == expected_sites
    assert all(site.site_class == block for site in report.sites)
    with torch.no_grad():
        out = injected(x)
    assert out.shape == model(x).shape and torch.isfinite(out).all()


def count_modules(model: nn.Module, cls: type) -> int:
    return sum(isinstance(m, cls) for m in model.modules())
