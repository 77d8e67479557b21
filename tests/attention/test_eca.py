"""ECALayer (Wang et al., CVPR 2020): generic checks, Eq. 12 kernel sizes, parameter count, a direct
re-statement of the 1-D channel convolution, tiling invariance, registry and argument errors."""
import math

import pytest
import torch
from .attention_checks import ALL_CHECKS, check_forward_gated, assert_tiling_invariant, perturb_parameters

from plugattn.attention import ECALayer, create_attention
from plugattn.parameters import count_parameters
from plugattn.testing import assert_rel_close

CHANNELS = 8


@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda c: c.__name__)
def test_generic_checks(check):
    check(lambda: ECALayer(CHANNELS), CHANNELS)


@pytest.mark.parametrize("channels, expected_k", [(64, 3), (256, 5), (512, 5), (1024, 5), (2048, 7)])
def test_adaptive_kernel_size_follows_eq_12(channels, expected_k):
    # t = int(|(log2 C + 1) / 2|), then the nearest odd number at or above it.
    assert ECALayer(channels).k_size == expected_k
    assert ECALayer(channels).conv.kernel_size == (expected_k,)


def test_resnet50_bottleneck_total_is_86_parameters():
    # 16 bottlenecks: 3 at C=256, 4 at 512, 6 at 1024, 3 at 2048 -> k = 5, 5, 5, 7.
    stages = [(256, 3), (512, 4), (1024, 6), (2048, 3)]
    total = sum(count_parameters(ECALayer(c)) * blocks for c, blocks in stages)
    assert total == 3 * 5 + 4 * 5 + 6 * 5 + 3 * 7 == 86


def test_parameter_count_at_64_channels():
    # one 1-D kernel of size k = 3, no bias
    assert count_parameters(ECALayer(64)) == 3


def test_explicit_k_size_and_gamma_b():
    assert ECALayer(64, k_size=9).k_size == 9
    # gamma = 1, b = 1 at C = 64: t = int(7) = 7, odd -> 7
    assert ECALayer(64, gamma=1, b=1).k_size == 7


def test_matches_direct_restatement():
    module = perturb_parameters(ECALayer(8, k_size=5)).eval()
    x = torch.randn(2, 8, 3, 4)
    y = x.mean(dim=(2, 3))  # (B, C)
    kernel = module.conv.weight.detach().reshape(5)
    padded = torch.nn.functional.pad(y, (2, 2))
    conv = torch.stack([(padded[:, c : c + 5] * kernel).sum(dim=1) for c in range(8)], dim=1)
    expected = x * torch.sigmoid(conv)[:, :, None, None]
    assert_rel_close(module(x), expected)


def test_tiling_invariance():
    assert_tiling_invariant(perturb_parameters(ECALayer(CHANNELS)), CHANNELS)


@pytest.mark.parametrize("name", ["eca", "ECA", "eca_layer", "ecalayer"])
def test_create_by_name(name):
    module = create_attention(name, 64)
    assert isinstance(module, ECALayer) and module.k_size == 3


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(channels=0), "channels"),
        (dict(channels=64, k_size=4), "k_size"),
        (dict(channels=64, k_size=0), "k_size"),
        (dict(channels=64, k_size=3.0), "k_size"),
        (dict(channels=64, gamma=0), "gamma"),
        (dict(channels=64, b=math.nan), "b"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ECALayer(**kwargs)


def test_wrong_input_channels():
    with pytest.raises(ValueError, match="64 channels"):
        ECALayer(64)(torch.randn(1, 32, 4, 4))


def test_forward_gated_is_the_identity_at_zero_and_the_module_at_one():
    """forward_gated(x, gate) = x + gate (module(x) - x), per channel; the gate gets a gradient."""
    check_forward_gated(ECALayer(8))
