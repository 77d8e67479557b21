"""SELayer (Hu et al., CVPR 2018): generic checks, paper formula, torchvision compatibility, errors."""
import pytest
import torch
import torch.nn.functional as F
import torchvision
from .attention_checks import ALL_CHECKS, check_forward_gated, assert_tiling_invariant, perturb_parameters

from plugattn.attention import SELayer, create_attention
from plugattn.parameters import count_parameters
from plugattn.testing import assert_rel_close

CHANNELS = 8


@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("variant", [{}, {"act": "silu", "gate": "hardsigmoid"}], ids=["paper", "mobile"])
def test_generic_checks(check, variant):
    check(lambda: SELayer(CHANNELS, 4, **variant), CHANNELS)


def test_parameter_count_at_64_channels():
    hidden = 64 // 16
    fc1 = 64 * hidden + hidden
    fc2 = hidden * 64 + 64
    assert count_parameters(SELayer(64)) == fc1 + fc2 == 580
    assert count_parameters(SELayer(64, bias=False)) == 64 * hidden * 2


@pytest.mark.parametrize(
    "kwargs, hidden",
    [({}, 4), ({"reduction": 4}, 16), ({"hidden_channels": 24}, 24), ({"reduction": 128}, 1)],
)
def test_hidden_width(kwargs, hidden):
    se = SELayer(64, **kwargs)
    assert se.hidden_channels == hidden
    assert se.fc1.weight.shape == (hidden, 64, 1, 1)
    assert se.fc2.weight.shape == (64, hidden, 1, 1)


@pytest.mark.parametrize(
    "act, gate, act_fn, gate_fn",
    [("relu", "sigmoid", F.relu, torch.sigmoid), ("silu", "hardsigmoid", F.silu, F.hardsigmoid)],
)
def test_matches_equations_2_to_4(act, gate, act_fn, gate_fn):
    se = perturb_parameters(SELayer(16, 4, act=act, gate=gate)).eval()
    assert (se.act_name, se.gate_name) == (act, gate)
    x = torch.randn(3, 16, 5, 7)
    z = x.sum(dim=(2, 3)) / (5 * 7)  # Eq. (2): (B, C)
    w1, b1 = se.fc1.weight[:, :, 0, 0], se.fc1.bias
    w2, b2 = se.fc2.weight[:, :, 0, 0], se.fc2.bias
    s = gate_fn(act_fn(z @ w1.T + b1) @ w2.T + b2)  # Eq. (3)
    expected = x * s[:, :, None, None]  # Eq. (4)
    assert_rel_close(se(x), expected)


def test_tiling_invariant():
    assert_tiling_invariant(perturb_parameters(SELayer(CHANNELS, 4)), CHANNELS)


def test_loads_torchvision_squeeze_excitation_weights():
    reference = perturb_parameters(torchvision.ops.SqueezeExcitation(64, 16)).eval()
    se = SELayer(64, hidden_channels=16).eval()
    se.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 64, 6, 6)
    assert_rel_close(se(x), reference(x))


def test_created_by_registry_name():
    module = create_attention("SE", 64, reduction=8)
    assert isinstance(module, SELayer) and module.hidden_channels == 8


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"channel": 0}, "channel must be an integer >= 1, got 0"),
        ({"channel": 64.0}, "channel must be an integer"),
        ({"channel": 64, "reduction": 0}, "reduction must be an integer >= 1, got 0"),
        ({"channel": 64, "hidden_channels": 0}, "hidden_channels must be an integer >= 1"),
        ({"channel": 64, "act": "rleu"}, "act must be one of 'relu', 'silu', got 'rleu'; did you mean 'relu'"),
        ({"channel": 64, "gate": "hard_sigmoid"}, "gate must be one of .*did you mean 'hardsigmoid'"),
        ({"channel": 64, "bias": 1}, "bias must be a bool, got 1"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SELayer(**kwargs)


@pytest.mark.parametrize(
    "shape, match", [((2, 16, 4, 4), "built for 32 channels, got input with 16"), ((2, 32, 4), "expects input")]
)
def test_bad_input_raises(shape, match):
    with pytest.raises(ValueError, match=match):
        SELayer(32)(torch.randn(shape))


def test_forward_gated_is_the_identity_at_zero_and_the_module_at_one():
    """forward_gated(x, gate) = x + gate (module(x) - x), per channel; the gate gets a gradient."""
    check_forward_gated(SELayer(8, reduction=4))
