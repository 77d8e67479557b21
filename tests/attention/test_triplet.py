"""Tests for TripletAttention (Misra et al., WACV 2021)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from .attention_checks import ALL_CHECKS, perturb_parameters

from plugattn.attention import TripletAttention, create_attention
from plugattn.parameters import count_parameters
from plugattn.testing import assert_rel_close

CHANNELS = 4


@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda c: c.__name__)
def test_generic_checks(check):
    check(lambda: TripletAttention(CHANNELS), CHANNELS)


# The variants share every layer type with the default; gradcheck (the costly check) runs once above.
VARIANT_CHECKS = [c for c in ALL_CHECKS if c.__name__ != "check_gradcheck"]


@pytest.mark.parametrize("check", VARIANT_CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("kwargs", [{"no_spatial": True}, {"kernel_size": 3}], ids=["no_spatial", "k3"])
def test_generic_checks_variants(check, kwargs):
    check(lambda: TripletAttention(CHANNELS, **kwargs), CHANNELS)


def test_channel_agnostic_without_channels():
    module = TripletAttention().eval()
    for channels in (3, 17):
        x = torch.randn(2, channels, 6, 5)
        assert module(x).shape == x.shape


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        # each branch: a 2 -> 1 k×k conv without bias (2·k·k) and a 1-channel BN (weight + bias = 2)
        ({}, 3 * (2 * 7 * 7 + 2)),
        ({"kernel_size": 3}, 3 * (2 * 3 * 3 + 2)),
        ({"no_spatial": True}, 2 * (2 * 7 * 7 + 2)),
    ],
)
def test_parameter_count_at_64_channels(kwargs, expected):
    assert count_parameters(TripletAttention(64, **kwargs)) == expected


def _branch_gate(x, gate, permutation):
    """Re-statement of one branch of Eq. 2: rotate, Z-pool [max, mean], conv, BN (eval), sigmoid."""
    rotated = x.permute(*permutation)
    pooled = torch.stack([rotated.max(dim=1).values, rotated.mean(dim=1)], dim=1)
    conv = F.conv2d(pooled, gate.conv.weight, padding=gate.conv.weight.shape[-1] // 2)
    bn = gate.bn
    std = torch.sqrt(bn.running_var.view(1, -1, 1, 1) + bn.eps)
    normed = (conv - bn.running_mean.view(1, -1, 1, 1)) / std
    normed = normed * bn.weight.view(1, -1, 1, 1) + bn.bias.view(1, -1, 1, 1)
    # gate on the rotated layout; the permutations used here are their own inverses
    return torch.sigmoid(normed).permute(*permutation)


def _perturbed_eval(module):
    perturb_parameters(module, seed=3)
    with torch.no_grad():
        for gate in module.children():
            gate.bn.running_mean.fill_(0.2)
            gate.bn.running_var.fill_(1.5)
    return module.eval()


@pytest.mark.parametrize("no_spatial", [False, True])
def test_matches_restated_equation(no_spatial):
    module = _perturbed_eval(TripletAttention(CHANNELS, no_spatial=no_spatial).double())
    x = torch.randn(2, CHANNELS, 7, 5, dtype=torch.float64)
    branches = [x * _branch_gate(x, module.cw, (0, 2, 1, 3)), x * _branch_gate(x, module.hc, (0, 3, 2, 1))]
    if not no_spatial:
        branches.append(x * _branch_gate(x, module.hw, (0, 1, 2, 3)))
    expected = sum(branches) / len(branches)
    assert_rel_close(module(x), expected, what="triplet vs Eq. 2")


def test_gates_lie_strictly_in_unit_interval_and_go_below_half():
    module = _perturbed_eval(TripletAttention(CHANNELS))
    x = 3 * torch.randn(2, CHANNELS, 9, 6)
    rotations = {"cw": x.permute(0, 2, 1, 3), "hc": x.permute(0, 3, 2, 1), "hw": x}
    for name, rotated in rotations.items():
        gate = getattr(module, name).gate(rotated)
        assert gate.shape == (rotated.shape[0], 1, rotated.shape[2], rotated.shape[3])
        assert (gate > 0).all() and (gate < 1).all(), name
        # a ReLU before the sigmoid (the classic bug) would pin every gate at >= 0.5
        assert (gate < 0.5).any(), name
    ratio = module(x) / x  # the average of three gates in (0, 1) is in (0, 1)
    assert (ratio > 0).all() and (ratio < 1).all()


def test_created_by_registry_name():
    assert isinstance(create_attention("triplet", 64), TripletAttention)
    assert isinstance(create_attention("Triplet", 64, kernel_size=3), TripletAttention)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"kernel_size": 4}, "kernel_size must be odd.*got 4"),
        ({"kernel_size": 0}, "kernel_size must be an integer >= 1, got 0"),
        ({"kernel_size": -3}, "kernel_size must be an integer >= 1, got -3"),
        ({"kernel_size": 3.0}, "kernel_size must be an integer"),
        ({"channels": 0}, "channels must be an integer >= 1, got 0"),
        ({"no_spatial": "yes"}, "no_spatial must be True or False, got 'yes'"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TripletAttention(**kwargs)


def test_bad_input_raises():
    module = TripletAttention(8)
    with pytest.raises(ValueError, match="built for 8 channels, got input with 4 channels"):
        module(torch.randn(1, 4, 5, 5))
    with pytest.raises(ValueError, match=r"expects input of shape \(B, C, H, W\)"):
        module(torch.randn(8, 5, 5))
