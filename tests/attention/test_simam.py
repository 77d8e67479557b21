"""Tests for SimAM (Yang et al., ICML 2021)."""
from __future__ import annotations

import math

import pytest
import torch
from .attention_checks import ALL_CHECKS, check_forward_gated

from plugattn.attention import SimAM, create_attention
from plugattn.attention.simam import simam_module
from plugattn.parameters import count_parameters
from plugattn.testing import assert_rel_close

CHANNELS = 8


@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("channels", [CHANNELS, None], ids=["checked", "agnostic"])
def test_generic_checks(check, channels):
    check(lambda: SimAM(channels), CHANNELS)


def test_parameter_count_at_64_channels():
    assert count_parameters(SimAM(64)) == 0  # parameter-free by design


@pytest.mark.parametrize("e_lambda", [1e-4, 0.1])
def test_matches_the_minimal_energy_equation(e_lambda):
    """Eq. 5 of the paper, neuron by neuron: e_t* = 4(σ̂² + λ) / ((t − μ̂)² + 2σ̂² + 2λ),
    with μ̂ the channel mean and σ̂² = Σ_i (x_i − μ̂)² / (M − 1) (as the paper's code, Fig. 3);
    then Eq. 6: X̃ = sigmoid(1 / E) ⊙ X."""
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    expected = torch.empty_like(x)
    for b in range(2):
        for k in range(3):
            values = x[b, k].flatten().tolist()
            m = len(values)
            mu = sum(values) / m
            var = sum((v - mu) ** 2 for v in values) / (m - 1)
            for i in range(4):
                for j in range(5):
                    t = x[b, k, i, j].item()
                    energy = 4 * (var + e_lambda) / ((t - mu) ** 2 + 2 * var + 2 * e_lambda)
                    expected[b, k, i, j] = t / (1 + math.exp(-1 / energy))
    assert_rel_close(SimAM(3, e_lambda=e_lambda)(x), expected, what="SimAM vs Eq. 5-6")


def test_gate_is_at_least_sigmoid_half():
    # 1 / e_t* = d / (4(σ̂² + λ)) + 0.5 >= 0.5, so every gate is in [σ(0.5), 1)
    x = 4 * torch.randn(2, CHANNELS, 6, 7, dtype=torch.float64)
    gate = SimAM()(x) / x
    assert (gate >= 1 / (1 + math.exp(-0.5)) - 1e-12).all() and (gate < 1).all()
    # outliers get more attention than neurons at the channel mean
    flat_x, flat_gate = x[0, 0].flatten(), gate[0, 0].flatten()
    deviation = (flat_x - flat_x.mean()).abs()
    assert flat_gate[deviation.argmax()] > flat_gate[deviation.argmin()]


def test_one_by_one_maps_are_finite_and_gated_by_sigmoid_half():
    # n = H·W − 1 = 0 is clamped to 1; d = 0 there, so 1 / e* = 0.5 and y = x · σ(0.5)
    x = torch.randn(3, CHANNELS, 1, 1)
    y = SimAM(CHANNELS)(x)
    assert torch.isfinite(y).all()
    assert_rel_close(y, x * torch.sigmoid(torch.tensor(0.5)), what="1x1 map")


def test_created_by_registry_name_and_alias():
    assert isinstance(create_attention("simam", 64), SimAM)
    assert create_attention("simam_module", 64, e_lambda=1e-3).e_lambda == pytest.approx(1e-3)
    assert simam_module is SimAM


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"e_lambda": 0.0}, "e_lambda must be a finite number > 0, got 0.0"),
        ({"e_lambda": -1e-4}, "e_lambda must be a finite number > 0, got -0.0001"),
        ({"e_lambda": float("inf")}, "e_lambda must be a finite number > 0, got inf"),
        ({"channels": 0}, "channels must be an integer >= 1, got 0"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SimAM(**kwargs)


def test_bad_input_raises():
    module = SimAM(8)
    with pytest.raises(ValueError, match="built for 8 channels, got input with 4 channels"):
        module(torch.randn(1, 4, 5, 5))
    with pytest.raises(ValueError, match=r"expects input of shape \(B, C, H, W\)"):
        module(torch.randn(8, 5, 5))


def test_forward_gated_is_the_identity_at_zero_and_the_module_at_one():
    """forward_gated(x, gate) = x + gate (module(x) - x), per channel; the gate gets a gradient."""
    check_forward_gated(SimAM(8))
