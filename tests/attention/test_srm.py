"""SRM (Lee et al., ICCV 2019): generic checks, style pooling / integration re-stated, tiling
invariance, 1x1 maps, parameter count, errors."""
import pytest
import torch
import torch.nn as nn
from .attention_checks import ALL_CHECKS, assert_tiling_invariant, perturb_parameters

from plugattn.attention import SRM, create_attention
from plugattn.parameters import count_parameters
from plugattn.testing import assert_rel_close

CHANNELS = 8


@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda c: c.__name__)
def test_generic_checks(check):
    check(lambda: SRM(CHANNELS), CHANNELS)


def test_parameter_count_at_64_channels():
    channel_wise_fc = 64 * 2  # one weight per (channel, style statistic), no bias
    batch_norm = 2 * 64
    assert count_parameters(SRM(64)) == channel_wise_fc + batch_norm == 256


def _reference_srm(module: SRM, x: torch.Tensor) -> torch.Tensor:
    """Style pooling, channel-wise FC, BN (eval), sigmoid: Eq. (1)-(6) written out."""
    hw = x.shape[2] * x.shape[3]
    mu = x.sum(dim=(2, 3)) / hw  # (B, C)
    sigma = torch.sqrt(((x - mu[:, :, None, None]) ** 2).sum(dim=(2, 3)) / hw + module.eps)  # (B, C)
    w = module.cfc.weight[:, 0, :]  # (C, 2)
    z = w[:, 0] * mu + w[:, 1] * sigma  # (B, C)
    bn = module.bn
    z_hat = (z - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias
    return x * torch.sigmoid(z_hat)[:, :, None, None]


def test_matches_style_pooling_and_integration():
    module = perturb_parameters(SRM(CHANNELS))
    with torch.no_grad():
        module.bn.running_mean.uniform_(-0.5, 0.5)
        module.bn.running_var.uniform_(0.5, 2.0)
    module.eval()
    x = torch.randn(3, CHANNELS, 5, 6)
    assert_rel_close(module(x), _reference_srm(module, x))


def test_channel_wise_fc_is_depthwise_without_bias():
    cfc = SRM(64).cfc
    assert isinstance(cfc, nn.Conv1d) and cfc.groups == 64 and cfc.kernel_size == (2,) and cfc.bias is None


def test_gate_is_one_half_at_init():
    """cfc starts at zero (authors' code), so z = 0 and the eval gate is sigmoid(BN(0)) = 0.5."""
    module = SRM(CHANNELS).eval()
    x = torch.randn(2, CHANNELS, 4, 4)
    assert_rel_close(module(x), 0.5 * x)


def test_tiling_invariant():
    assert_tiling_invariant(perturb_parameters(SRM(CHANNELS)), CHANNELS)


def test_std_of_constant_map_is_sqrt_eps_with_finite_gradient():
    module = perturb_parameters(SRM(CHANNELS, eps=1e-4)).eval()
    x = torch.full((2, CHANNELS, 1, 1), 3.0, requires_grad=True)
    y = module(x)
    assert_rel_close(y, _reference_srm(module, x.detach()))
    y.sum().backward()
    assert torch.isfinite(x.grad).all()


def test_created_by_registry_name():
    module = create_attention("srm", 64, eps=1e-3)
    assert isinstance(module, SRM) and module.eps == 1e-3


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"channel": 0}, "channel must be an integer >= 1, got 0"),
        ({"channel": "64"}, "channel must be an integer >= 1, got '64'"),
        ({"channel": 64, "eps": 0.0}, "eps must be a finite number > 0, got 0.0"),
        ({"channel": 64, "eps": float("nan")}, "eps must be a finite number > 0, got nan"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SRM(**kwargs)


def test_wrong_channel_count_raises():
    with pytest.raises(ValueError, match="SRM was built for 8 channels, got input with 4"):
        SRM(8)(torch.randn(1, 4, 3, 3))


def test_sigma_differs_from_the_authors_code_only_by_the_variance_normalisation():
    """The authors' style pooling (models/recalibration_modules.py since 2019-08-02) is
    sqrt(x.var(unbiased) + eps); ours is sqrt(biased var + eps): equal after rescaling the variance,
    and on a 1x1 map the authors' is NaN while ours is sqrt(eps)."""
    eps = 1e-5
    x = torch.randn(2, 6, 5, 3, dtype=torch.float64)
    flat = x.flatten(2)
    authors_sigma = (flat.var(dim=2, keepdim=True) + eps).sqrt()
    ours = SRM(6, eps=eps).double()
    captured = {}
    ours.cfc.register_forward_hook(lambda m, args, out: captured.update(style=args[0]))
    ours.eval()(x)
    our_sigma = captured["style"][..., 1:]
    hw = flat.shape[2]
    assert torch.allclose(our_sigma.square() - eps, (authors_sigma.square() - eps) * (hw - 1) / hw)
    single = torch.randn(1, 6, 1, 1, dtype=torch.float64)
    with pytest.warns(UserWarning, match="degrees of freedom"):
        assert torch.isnan(single.flatten(2).var(dim=2)).all()
    captured.clear()
    ours(single)
    assert torch.allclose(captured["style"][..., 1], torch.full((1, 6), eps ** 0.5, dtype=torch.float64))
