"""Tests for GaussianContextTransformer (Ruan et al., CVPR 2021)."""
from __future__ import annotations

import math

import pytest
import torch
from .attention_checks import ALL_CHECKS, assert_tiling_invariant, perturb_parameters

from plugattn.attention import GaussianContextTransformer, create_attention
from plugattn.parameters import count_parameters
from plugattn.testing import assert_rel_close

CHANNELS = 8


@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("learnable", [False, True], ids=["B0", "B1"])
def test_generic_checks(check, learnable):
    check(lambda: GaussianContextTransformer(CHANNELS, learnable=learnable), CHANNELS)


def test_parameter_count_at_64_channels():
    assert count_parameters(GaussianContextTransformer(64)) == 0  # GCT-B0: parameter-free
    assert count_parameters(GaussianContextTransformer(64, learnable=True)) == 1  # GCT-B1: one scalar θ


@pytest.mark.parametrize("learnable", [False, True], ids=["B0", "B1"])
def test_tiling_invariance(learnable):
    assert_tiling_invariant(GaussianContextTransformer(CHANNELS, learnable=learnable), CHANNELS)


@pytest.mark.parametrize("c", [0.5, 2.0, 3.0])
def test_matches_restated_equations(c):
    module = GaussianContextTransformer(CHANNELS, c=c).double()
    x = torch.randn(3, CHANNELS, 5, 4, dtype=torch.float64)
    expected = torch.empty_like(x)
    for b in range(x.shape[0]):
        z = [x[b, k].mean().item() for k in range(CHANNELS)]  # z_k = 1/(HW) Σ X_k(i, j)
        mu = sum(z) / CHANNELS
        sigma = math.sqrt(sum((zk - mu) ** 2 for zk in z) / CHANNELS) + 1e-5
        for k in range(CHANNELS):
            z_hat = (z[k] - mu) / sigma
            expected[b, k] = math.exp(-(z_hat**2) / (2 * c**2)) * x[b, k]
    assert_rel_close(module(x), expected, what="GCT vs Y = exp(-norm(avg(X))² / 2c²) X")


def test_c_is_the_standard_deviation():
    # Two channels with means -a and +a normalise to ẑ = ∓1, so the gate is exp(-1 / (2c²)):
    # exp(-1/8) for c = 2, not exp(-c/2) = exp(-1) as when c is read as an inverse variance.
    a = 3.0
    x = torch.stack([torch.full((4, 4), -a), torch.full((4, 4), a)]).unsqueeze(0).double()
    gate = GaussianContextTransformer(2, c=2.0).double()(x) / x
    expected_gate = math.exp(-1 / (2 * 2.0**2)) ** (a / (a + 1e-5)) ** 2  # ẑ = a / (a + eps)
    assert torch.allclose(gate, torch.full_like(gate, expected_gate), rtol=0, atol=1e-12)


def test_gate_peaks_at_one_for_the_mean_context_and_decreases_away_from_it():
    means = torch.tensor([-2.0, -1.0, 0.0, 1.0, 2.0], dtype=torch.float64)
    x = means.view(1, 5, 1, 1).expand(1, 5, 3, 3).contiguous() + 1e-3 * torch.randn(1, 5, 3, 3).double()
    x = x - x.mean(dim=(2, 3), keepdim=True) + means.view(1, 5, 1, 1)  # exact channel means
    gate = (GaussianContextTransformer(5).double()(x) / x).mean(dim=(2, 3))[0]
    assert gate[2].item() == pytest.approx(1.0, abs=1e-12)
    assert gate[1] < 1 and gate[0] < gate[1]
    assert gate[3] < 1 and gate[4] < gate[3]
    assert gate[0].item() == pytest.approx(gate[4].item(), abs=1e-12)


def test_learnable_std_starts_at_c_and_stays_in_bounds():
    assert GaussianContextTransformer(8, c=2.0, learnable=True).std().item() == pytest.approx(2.0)
    paper_init = GaussianContextTransformer(8, c=2.5, learnable=True)
    assert paper_init.theta.item() == pytest.approx(0.0, abs=1e-7)  # the paper initialises θ = 0
    with torch.no_grad():
        paper_init.theta.fill_(50.0)
    assert paper_init.std().item() <= 1.0 + 3.0
    with torch.no_grad():
        paper_init.theta.fill_(-50.0)
    assert paper_init.std().item() >= 1.0


def test_gradient_stays_finite_when_every_channel_has_the_same_mean():
    module = perturb_parameters(GaussianContextTransformer(4, learnable=True))
    x = torch.ones(2, 4, 3, 3, requires_grad=True)
    y = module(x)
    y.sum().backward()
    assert torch.isfinite(y).all() and torch.isfinite(x.grad).all()
    assert torch.isfinite(module.theta.grad).all()


def test_created_by_registry_name_and_alias():
    assert isinstance(create_attention("gaussian", 64), GaussianContextTransformer)
    module = create_attention("gct_gaussian", 64, learnable=True)
    assert isinstance(module, GaussianContextTransformer) and module.learnable


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"c": 0.0}, "c must be a finite number > 0, got 0.0"),
        ({"c": -1.0}, "c must be a finite number > 0, got -1.0"),
        ({"c": float("nan")}, "c must be a finite number > 0, got nan"),
        ({"c": 0.5, "learnable": True}, r"c must lie in \(1.0, 4.0\) when learnable=True.*got 0.5"),
        ({"c": 4.0, "learnable": True}, r"c must lie in \(1.0, 4.0\) when learnable=True.*got 4.0"),
        ({"learnable": "yes"}, "learnable must be True or False, got 'yes'"),
        ({"eps": 0.0}, "eps must be a finite number > 0, got 0.0"),
        ({"channels": 0}, "channels must be an integer >= 1, got 0"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GaussianContextTransformer(**kwargs)


def test_bad_input_raises():
    module = GaussianContextTransformer(8)
    with pytest.raises(ValueError, match="built for 8 channels, got input with 4 channels"):
        module(torch.randn(1, 4, 5, 5))
    with pytest.raises(ValueError, match=r"expects input of shape \(B, C, H, W\)"):
        module(torch.randn(8, 5))
