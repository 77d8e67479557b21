"""GCT (Yang et al., CVPR 2020): generic checks in both modes, identity at init, Eqs. 1-3 re-stated,
tiling invariance, parameter count, registry and argument errors."""
import pytest
import torch
from .attention_checks import ALL_CHECKS, assert_tiling_invariant, perturb_parameters

from plugattn.attention import GCT, create_attention
from plugattn.parameters import count_parameters
from plugattn.testing import assert_rel_close

CHANNELS = 8


@pytest.mark.parametrize("mode", ["l2", "l1"])
@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda c: c.__name__)
def test_generic_checks(check, mode):
    check(lambda: GCT(CHANNELS, mode=mode), CHANNELS)


@pytest.mark.parametrize("mode", ["l2", "l1"])
def test_identity_at_init(mode):
    x = torch.randn(2, 64, 7, 5)
    assert torch.equal(GCT(64, mode=mode)(x), x)


def test_parameter_count_at_64_channels():
    # alpha, gamma, beta: one each per channel
    assert count_parameters(GCT(64)) == 3 * 64


def _reference(x, alpha, gamma, beta, eps, mode):
    """Eqs. 1-3 written per channel with explicit loops over channels."""
    batch, channels = x.shape[:2]
    out = torch.empty_like(x)
    for n in range(batch):
        s = torch.stack(
            [
                alpha[c] * (x[n, c].pow(2).sum() + eps).sqrt() if mode == "l2" else alpha[c] * x[n, c].abs().sum()
                for c in range(channels)
            ]
        )
        if mode == "l2":
            s_hat = channels**0.5 * s / (s.pow(2).sum() + eps).sqrt()
        else:
            s_hat = channels * s / (s.abs().sum() + eps)
        for c in range(channels):
            out[n, c] = x[n, c] * (1 + torch.tanh(gamma[c] * s_hat[c] + beta[c]))
    return out


@pytest.mark.parametrize("mode", ["l2", "l1"])
def test_matches_equations(mode):
    module = perturb_parameters(GCT(6, mode=mode), seed=3)
    with torch.no_grad():
        module.gamma.mul_(20)  # make the gate far from 1 so a wrong normalisation would show
    x = torch.randn(2, 6, 4, 3)
    flat = [p.detach().reshape(-1) for p in (module.alpha, module.gamma, module.beta)]
    expected = _reference(x, *flat, module.epsilon, mode)
    assert_rel_close(module(x), expected)
    assert not torch.allclose(module(x), x, atol=1e-2)


def test_after_relu_skips_abs_on_nonnegative_input():
    x = torch.randn(2, CHANNELS, 5, 5).relu()
    plain = perturb_parameters(GCT(CHANNELS, mode="l1"))
    after = GCT(CHANNELS, mode="l1", after_relu=True)
    after.load_state_dict(plain.state_dict())
    assert_rel_close(after(x), plain(x))


@pytest.mark.parametrize("mode", ["l2", "l1"])
def test_tiling_invariance(mode):
    # tiling multiplies ||x_c||_2 by 2 (l1: sum |x| by 4) for every channel; Eq. 2 divides it out
    module = perturb_parameters(GCT(CHANNELS, mode=mode))
    with torch.no_grad():
        module.gamma.mul_(10)
    assert_tiling_invariant(module, CHANNELS)


@pytest.mark.parametrize("name", ["gct", "GCT", "gated_channel_transformation"])
def test_create_by_name(name):
    assert isinstance(create_attention(name, 64), GCT)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_channels=0), "num_channels"),
        (dict(num_channels=8, mode="l3"), "mode.*did you mean"),
        (dict(num_channels=8, epsilon=0), "epsilon"),
        (dict(num_channels=8, after_relu="yes"), "after_relu"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GCT(**kwargs)


def test_wrong_input_rank():
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        GCT(8)(torch.randn(8, 4, 4))
