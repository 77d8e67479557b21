"""SKLayer (Li et al., CVPR 2019): generic checks, split-fuse-select re-stated, equal selection when the
select weights vanish, group adaptation, shape with planes/stride, parameter count, registry, errors."""
import pytest
import torch
import torch.nn.functional as F
from .attention_checks import ALL_CHECKS, perturb_parameters

from plugattn.attention import SKLayer, create_attention
from plugattn.parameters import count_parameters
from plugattn.testing import assert_rel_close

CHANNELS = 8


@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda c: c.__name__)
def test_generic_checks(check):
    check(lambda: SKLayer(CHANNELS, groups=4), CHANNELS)


def test_parameter_count_at_64_channels():
    channels, groups, branches = 64, 32, 2
    width = max(64 // 16, 32)  # d = max(C / r, L)
    branch = channels * (channels // groups) * 3 * 3 + 2 * channels  # grouped 3x3 conv + BN affine
    squeeze = channels * width + 2 * width  # FC C -> d + BN affine
    select = branches * width * channels  # A, B: d -> C, no bias
    assert count_parameters(SKLayer(64)) == branches * branch + squeeze + select == 8768


def _reference(module, x):
    """Eqs. 1-6 with functional ops, evaluation-mode BN."""

    def batch_norm(t, bn):
        return F.batch_norm(t, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)

    features = []
    for m, branch in enumerate(module.branches):
        conv, bn, _ = branch
        u = F.conv2d(x, conv.weight, stride=conv.stride, padding=m + 1, dilation=m + 1, groups=module.groups)
        features.append(torch.relu(batch_norm(u, bn)))
    s = sum(features).mean(dim=(2, 3))  # (B, P)
    fc, bn, _ = module.squeeze
    z = torch.relu(batch_norm((s @ fc.weight.reshape(fc.out_channels, -1).T)[:, :, None, None], bn))
    a = module.select.weight.reshape(module.M, module.planes, -1)  # (M, P, d)
    logits = torch.einsum("mpd,bd->bmp", a, z.reshape(z.shape[0], -1))
    weights = logits.exp() / logits.exp().sum(dim=1, keepdim=True)
    return sum(weights[:, m, :, None, None] * features[m] for m in range(module.M))


@pytest.mark.parametrize("branches, stride", [(2, 1), (3, 2)])
def test_matches_equations(branches, stride):
    module = perturb_parameters(SKLayer(8, planes=12, groups=4, stride=stride, M=branches), seed=2).eval()
    with torch.no_grad():
        module.select.weight.mul_(30)
    x = torch.randn(2, 8, 7, 6)
    assert_rel_close(module(x), _reference(module, x))


def test_zero_selection_weights_average_the_branches():
    module = perturb_parameters(SKLayer(CHANNELS, groups=4, M=3)).eval()
    with torch.no_grad():
        module.select.weight.zero_()
    x = torch.randn(2, CHANNELS, 6, 6)
    mean_of_branches = torch.stack([branch(x) for branch in module.branches]).mean(dim=0)
    assert_rel_close(module(x), mean_of_branches)


@pytest.mark.parametrize("channels, groups", [(64, 32), (48, 24), (20, 20), (36, 18), (7, 7), (256, 32)])
def test_default_groups_adapt_to_channels(channels, groups):
    assert SKLayer(channels).groups == groups


def test_planes_and_stride_change_the_shape():
    y = SKLayer(16, planes=32, stride=2)(torch.randn(2, 16, 9, 8))
    assert y.shape == (2, 32, 5, 4)


def test_attention_width_floor():
    assert SKLayer(64).attention_width == 32  # L = 32 wins over 64 / 16
    assert SKLayer(1024, ratio=16).attention_width == 64


@pytest.mark.parametrize("name", ["sk", "SK", "sknet", "selective_kernel", "sklayer"])
def test_create_by_name(name):
    module = create_attention(name, 64)
    assert isinstance(module, SKLayer)
    assert module(torch.randn(2, 64, 4, 4)).shape == (2, 64, 4, 4)


def test_batch_of_one_needs_eval_mode():
    # the BN after the squeeze FC sees one value per channel in a batch of one (documented limitation)
    module = SKLayer(16)
    with pytest.raises(ValueError, match=r"SKLayer in training mode cannot take input of shape \(1, 16, 4, 4\)"):
        module(torch.randn(1, 16, 4, 4))
    assert module.eval()(torch.randn(1, 16, 4, 4)).shape == (1, 16, 4, 4)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(inplanes=64, groups=24), "groups must divide"),
        (dict(inplanes=64, planes=48, groups=32), "groups must divide"),
        (dict(inplanes=0), "inplanes"),
        (dict(inplanes=64, planes=0), "planes"),
        (dict(inplanes=64, M=0), "M"),
        (dict(inplanes=64, stride=0), "stride"),
        (dict(inplanes=64, ratio=0), "ratio"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SKLayer(**kwargs)
