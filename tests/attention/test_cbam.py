"""CBAM (Woo et al., ECCV 2018): generic checks, Eq. (1)-(3) re-stated, parameter count, errors."""
import pytest
import torch
import torch.nn.functional as F
from .attention_checks import ALL_CHECKS, perturb_parameters

from plugattn.attention import CBAM, create_attention
from plugattn.parameters import count_parameters
from plugattn.testing import assert_rel_close

CHANNELS = 8


@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda c: c.__name__)
def test_generic_checks(check):
    check(lambda: CBAM(CHANNELS, 4, kernel_size=3), CHANNELS)


def test_parameter_count_at_64_channels():
    hidden = 64 // 16
    shared_mlp = (64 * hidden + hidden) + (hidden * 64 + 64)
    spatial_conv = 2 * 7 * 7  # no bias, followed by BN (authors' code)
    spatial_bn = 2  # weight and bias of BatchNorm2d(1)
    assert count_parameters(CBAM(64)) == shared_mlp + spatial_conv + spatial_bn == 680


def test_hidden_width_never_zero():
    assert CBAM(8, 16).channel_gate.mlp[0].out_channels == 1


def _reference_cbam(module: CBAM, x: torch.Tensor) -> torch.Tensor:
    """Eq. (1)-(3) of the paper written out, BN in eval mode with its running statistics."""
    first, last = module.channel_gate.mlp[0], module.channel_gate.mlp[2]

    def mlp(v):  # (B, C) -> (B, C)
        hidden = F.relu(v @ first.weight[:, :, 0, 0].T + first.bias)
        return hidden @ last.weight[:, :, 0, 0].T + last.bias

    channel_att = torch.sigmoid(mlp(x.mean(dim=(2, 3))) + mlp(x.flatten(2).max(dim=2).values))  # Eq. (2)
    refined = x * channel_att[:, :, None, None]  # Eq. (1), first line
    pooled = torch.stack([refined.mean(dim=1), refined.max(dim=1).values], dim=1)  # (B, 2, H, W)
    conv, bn = module.spatial_gate.conv, module.spatial_gate.bn
    k = conv.kernel_size[0]
    response = F.conv2d(pooled, conv.weight, padding=k // 2)
    response = (response - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias
    return refined * torch.sigmoid(response)  # Eq. (3) and Eq. (1), second line


@pytest.mark.parametrize("kernel_size", [3, 7])
def test_matches_equations_1_to_3(kernel_size):
    module = perturb_parameters(CBAM(CHANNELS, 4, kernel_size=kernel_size))
    with torch.no_grad():
        module.spatial_gate.bn.running_mean.fill_(0.3)
        module.spatial_gate.bn.running_var.fill_(2.0)
    module.eval()
    x = torch.randn(2, CHANNELS, 9, 8)
    assert_rel_close(module(x), _reference_cbam(module, x))


def test_channel_then_spatial_gate_values_in_unit_interval():
    module = perturb_parameters(CBAM(CHANNELS, 4)).eval()
    x = torch.randn(2, CHANNELS, 6, 6)
    channel_att = module.channel_gate(x)
    spatial_att = module.spatial_gate(x * channel_att)
    assert channel_att.shape == (2, CHANNELS, 1, 1) and spatial_att.shape == (2, 1, 6, 6)
    for att in (channel_att, spatial_att):
        assert ((att > 0) & (att < 1)).all()
    # the block is exactly the product of the two gates applied in sequence
    assert_rel_close(module(x), x * channel_att * spatial_att)


def test_created_by_registry_name():
    module = create_attention("cbam", 64, kernel_size=3)
    assert isinstance(module, CBAM) and module.spatial_gate.conv.kernel_size == (3, 3)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"channel": 0}, "channel must be an integer >= 1, got 0"),
        ({"channel": 64, "reduction": -2}, "reduction must be an integer >= 1, got -2"),
        ({"channel": 64, "kernel_size": 4}, "kernel_size must be odd .*got 4"),
        ({"channel": 64, "kernel_size": 0}, "kernel_size must be an integer >= 1, got 0"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CBAM(**kwargs)


def test_wrong_channel_count_raises():
    with pytest.raises(ValueError, match="CBAM was built for 16 channels, got input with 8"):
        CBAM(16)(torch.randn(1, 8, 4, 4))
