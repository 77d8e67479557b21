"""LCT (Ruan et al., AAAI 2020): generic checks, group normalisation + affine + sigmoid re-stated,
tiling invariance, parameter count, registry and argument errors."""
import pytest
import torch
from .attention_checks import ALL_CHECKS, assert_tiling_invariant, perturb_parameters

from plugattn.attention import LCT, create_attention
from plugattn.parameters import count_parameters
from plugattn.testing import assert_rel_close

CHANNELS = 8


@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda c: c.__name__)
def test_generic_checks(check):
    check(lambda: LCT(CHANNELS, groups=2), CHANNELS)


def test_parameter_count_at_64_channels():
    # per-channel scale w and bias b
    assert count_parameters(LCT(64)) == 2 * 64


def test_matches_direct_restatement():
    channels, groups = 12, 3
    module = perturb_parameters(LCT(channels, groups=groups))
    x = torch.randn(2, channels, 4, 5)
    per_group = channels // groups
    expected = torch.empty_like(x)
    for n in range(2):
        context = x[n].mean(dim=(1, 2))  # (C,)
        for c in range(channels):
            g = c // per_group
            members = context[g * per_group : (g + 1) * per_group]
            normalised = (context[c] - members.mean()) / (members.var(unbiased=False) + module.eps).sqrt()
            gate = torch.sigmoid(module.w[c] * normalised + module.b[c])
            expected[n, c] = x[n, c] * gate
    assert_rel_close(module(x), expected)


def test_groups_do_not_interact():
    # changing the channels of group 0 leaves the gates of group 1 untouched
    module = perturb_parameters(LCT(8, groups=2)).eval()
    x = torch.randn(1, 8, 3, 3)
    changed = x.clone()
    changed[:, :4] = torch.randn(1, 4, 3, 3) * 5
    assert torch.equal(module(x)[:, 4:], module(changed)[:, 4:])
    assert not torch.allclose(module(x)[:, :4] / x[:, :4], module(changed)[:, :4] / changed[:, :4])


def test_tiling_invariance():
    assert_tiling_invariant(perturb_parameters(LCT(CHANNELS, groups=2)), CHANNELS)


@pytest.mark.parametrize("name", ["lct", "LCT", "linear_context_transform"])
def test_create_by_name(name):
    module = create_attention(name, 64)
    assert isinstance(module, LCT) and module.groups == 8


@pytest.mark.parametrize("channels,groups", [(64, 8), (12, 6), (3, 3), (30, 6), (33, 3), (50, 5), (7, 7), (1, 1)])
def test_default_groups_lowered_to_a_divisor(channels, groups):
    """groups=None: 8, lowered to the largest divisor of C that is <= 8 (as SKLayer does with 32)."""
    module = LCT(channels)
    assert module.groups == groups
    assert module(torch.randn(2, channels, 3, 3)).shape == (2, channels, 3, 3)
    assert create_attention("lct", channels).groups == groups


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(channels=12, groups=8), r"divisible by groups, got channels=12, groups=8 \(leave groups=None"),
        (dict(channels=0), "channels"),
        (dict(channels=8, groups=0), "groups"),
        (dict(channels=8, eps=-1.0), "eps"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LCT(**kwargs)
