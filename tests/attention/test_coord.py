"""Tests for CoordAtt (Hou et al., CVPR 2021)."""
from __future__ import annotations

import pytest
import torch
from .attention_checks import ALL_CHECKS, perturb_parameters

from plugattn.attention import CoordAtt, create_attention
from plugattn.attention.coord import CoordinateAttention
from plugattn.parameters import count_parameters
from plugattn.testing import assert_rel_close

CHANNELS = 8


@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda c: c.__name__)
def test_generic_checks(check):
    check(lambda: CoordAtt(CHANNELS), CHANNELS)


@pytest.mark.parametrize(
    "channels, reduction, expected",
    [
        # mip = max(8, 64 // 32) = 8: conv1 64·8 + 8, BN 2·8, conv_h and conv_w 8·64 + 64 each
        (64, 32, (64 * 8 + 8) + 2 * 8 + 2 * (8 * 64 + 64)),
        # mip = max(8, 64 // 4) = 16
        (64, 4, (64 * 16 + 16) + 2 * 16 + 2 * (16 * 64 + 64)),
    ],
)
def test_parameter_count_at_64_channels(channels, reduction, expected):
    assert count_parameters(CoordAtt(channels, reduction=reduction)) == expected


@pytest.mark.parametrize("channels, mip", [(64, 8), (256, 8), (512, 16), (1024, 32)])
def test_hidden_width_is_max_8_and_c_over_r(channels, mip):
    assert CoordAtt(channels).conv1.out_channels == mip


def _perturbed_eval(module):
    perturb_parameters(module, seed=5)
    with torch.no_grad():
        module.bn1.running_mean.uniform_(-0.2, 0.2)
        module.bn1.running_var.uniform_(0.5, 1.5)
    return module.eval()


def _pointwise(conv, features):
    """A 1x1 conv written as a matrix over channels: (B, C_in, L) -> (B, C_out, L)."""
    return torch.einsum("oc,bcl->bol", conv.weight[:, :, 0, 0], features) + conv.bias[None, :, None]


def test_matches_restated_equations_on_non_square_input():
    module = _perturbed_eval(CoordAtt(CHANNELS).double())
    x = torch.randn(2, CHANNELS, 7, 5, dtype=torch.float64)
    # Eqs. 4-5: average along W for every row h, along H for every column w
    z_h = torch.stack([x[:, :, h, :].mean(dim=-1) for h in range(7)], dim=-1)  # (B, C, H)
    z_w = torch.stack([x[:, :, :, w].mean(dim=-1) for w in range(5)], dim=-1)  # (B, C, W)
    z = torch.cat([z_h, z_w], dim=-1)  # (B, C, H + W)
    # Eq. 6: shared 1x1 conv = a matrix over channels, then BN (eval) and h-swish
    f = _pointwise(module.conv1, z)
    bn = module.bn1
    f = (f - bn.running_mean[None, :, None]) / torch.sqrt(bn.running_var[None, :, None] + bn.eps)
    f = f * bn.weight[None, :, None] + bn.bias[None, :, None]
    f = f * torch.clamp(f + 3, 0, 6) / 6
    f_h, f_w = f[:, :, :7], f[:, :, 7:]
    # Eqs. 7-8
    g_h = torch.sigmoid(_pointwise(module.conv_h, f_h))
    g_w = torch.sigmoid(_pointwise(module.conv_w, f_w))
    # Eq. 9: y_c(i, j) = x_c(i, j) · g_c^h(i) · g_c^w(j)
    expected = x * g_h[:, :, :, None] * g_w[:, :, None, :]
    assert_rel_close(module(x), expected, what="CoordAtt vs Eqs. 4-9")


def test_gates_lie_strictly_in_unit_interval():
    module = _perturbed_eval(CoordAtt(CHANNELS))
    x = 3 * torch.randn(2, CHANNELS, 7, 5)
    gate_h, gate_w = module.gates(x)
    assert gate_h.shape == (2, CHANNELS, 7, 1) and gate_w.shape == (2, CHANNELS, 1, 5)
    for gate in (gate_h, gate_w):
        assert (gate > 0).all() and (gate < 1).all()
    ratio = module(x) / x  # a_h · a_w, a product of two gates in (0, 1)
    assert (ratio > 0).all() and (ratio < 1).all()


def test_fx_trace_follows_the_input_size():
    module = _perturbed_eval(CoordAtt(CHANNELS))
    traced = torch.fx.symbolic_trace(module)
    for size in [(7, 5), (4, 9), (1, 1)]:
        x = torch.randn(1, CHANNELS, *size)
        assert_rel_close(traced(x), module(x), what=f"traced at {size}")


def test_created_by_registry_name_and_alias():
    assert isinstance(create_attention("coord", 64), CoordAtt)
    assert isinstance(create_attention("coordatt", 64, reduction=16), CoordAtt)
    assert CoordinateAttention is CoordAtt
    assert create_attention("coord", 64, oup=64).conv_h.out_channels == 64


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        ((64,), {"oup": 32}, "oup must equal inp \\(64\\).*got oup=32"),
        ((0,), {}, "inp must be an integer >= 1, got 0"),
        ((64,), {"oup": 0}, "oup must be an integer >= 1, got 0"),
        ((64,), {"reduction": 0}, "reduction must be an integer >= 1, got 0"),
        ((64.0,), {}, "inp must be an integer"),
    ],
)
def test_bad_arguments_raise(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        CoordAtt(*args, **kwargs)


def test_bad_input_raises():
    module = CoordAtt(16)
    with pytest.raises(ValueError, match="built for 16 channels, got input with 8 channels"):
        module(torch.randn(1, 8, 5, 5))
    with pytest.raises(ValueError, match=r"expects input of shape \(B, C, H, W\)"):
        module(torch.randn(16, 5, 5))
