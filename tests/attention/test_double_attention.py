"""DoubleAttention (Chen et al., NeurIPS 2018): generic checks, gather/distribute re-stated, tiling
invariance, parameter count, errors."""
import pytest
import torch
from .attention_checks import ALL_CHECKS, assert_tiling_invariant, perturb_parameters

from plugattn.attention import DoubleAttention, create_attention
from plugattn.parameters import count_parameters
from plugattn.testing import assert_rel_close

CHANNELS = 12


@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda c: c.__name__)
def test_generic_checks(check):
    check(lambda: DoubleAttention(CHANNELS, 4, 3), CHANNELS)


def test_parameter_count_at_64_channels():
    c_m = c_n = 64 // 4
    conv_a, conv_b, conv_v = (64 * c_m + c_m), (64 * c_n + c_n), (64 * c_n + c_n)
    reconstruct = c_m * 64 + 64
    assert count_parameters(DoubleAttention(64)) == conv_a + conv_b + conv_v + reconstruct == 4208


def test_defaults_and_classic_positional_signature():
    default = DoubleAttention(64)
    assert (default.c_m, default.c_n) == (16, 16)
    classic = DoubleAttention(64, 32, 24)
    assert (classic.c_m, classic.c_n) == (32, 24)
    assert classic.conv_reconstruct.weight.shape == (64, 32, 1, 1)
    assert (DoubleAttention(2).c_m, DoubleAttention(2).c_n) == (1, 1)  # never 0


def _reference_double_attention(module: DoubleAttention, x: torch.Tensor) -> torch.Tensor:
    """Gather then distribute, written per position with explicit sums (Sec. 3.1-3.3)."""
    batch, _, height, width = x.shape

    def conv1x1(conv, inp):  # (C_in, N) -> (C_out, N)
        return conv.weight[:, :, 0, 0] @ inp + conv.bias[:, None]

    outputs = []
    for b in range(batch):
        features = x[b].reshape(x.shape[1], -1)  # (C, N)
        a = conv1x1(module.conv_a, features)  # (c_m, N)
        attention_b = conv1x1(module.conv_b, features)  # (c_n, N)
        attention_v = conv1x1(module.conv_v, features)  # (c_n, N)
        gathered = []
        for j in range(module.c_n):  # g_j = sum_i softmax_i(b_j)_i * a_i
            weights = torch.exp(attention_b[j]) / torch.exp(attention_b[j]).sum()
            gathered.append((a * weights).sum(dim=1))
        g = torch.stack(gathered, dim=1)  # (c_m, c_n)
        distributed = []
        for i in range(features.shape[1]):  # z_i = sum_j softmax_j(v_i)_j * g_j
            weights = torch.exp(attention_v[:, i]) / torch.exp(attention_v[:, i]).sum()
            distributed.append((g * weights).sum(dim=1))
        z = torch.stack(distributed, dim=1)  # (c_m, N)
        outputs.append(features + conv1x1(module.conv_reconstruct, z))
    return torch.stack(outputs).reshape(batch, -1, height, width)


def test_matches_gather_distribute_equations():
    module = perturb_parameters(DoubleAttention(CHANNELS, 5, 3)).eval()
    x = torch.randn(2, CHANNELS, 3, 4)
    assert_rel_close(module(x), _reference_double_attention(module, x))


def test_tiling_invariant():
    """Softmax over HW weights each tile copy by 1/4, so the gathered descriptors do not change."""
    assert_tiling_invariant(perturb_parameters(DoubleAttention(CHANNELS, 4, 3)), CHANNELS)


def test_residual_block_is_identity_when_reconstruction_is_zero():
    module = perturb_parameters(DoubleAttention(CHANNELS)).eval()
    with torch.no_grad():
        module.conv_reconstruct.weight.zero_()
        module.conv_reconstruct.bias.zero_()
    x = torch.randn(2, CHANNELS, 5, 5)
    assert torch.equal(module(x), x)


@pytest.mark.parametrize("name", ["a2", "double", "A2"])
def test_created_by_registry_name_and_alias(name):
    module = create_attention(name, 64, c_m=8)
    assert isinstance(module, DoubleAttention) and (module.c_m, module.c_n) == (8, 16)


@pytest.mark.parametrize(
    "args, match",
    [
        ((0,), "in_channels must be an integer >= 1, got 0"),
        ((64, 0), "c_m must be an integer >= 1, got 0"),
        ((64, 16, -3), "c_n must be an integer >= 1, got -3"),
        ((64, 16.0), "c_m must be an integer >= 1, got 16.0"),
    ],
)
def test_bad_arguments_raise(args, match):
    with pytest.raises(ValueError, match=match):
        DoubleAttention(*args)


def test_wrong_channel_count_raises():
    with pytest.raises(ValueError, match="DoubleAttention was built for 12 channels, got input with 10"):
        DoubleAttention(12)(torch.randn(1, 10, 3, 3))
