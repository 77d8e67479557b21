"""BAM (Park et al., BMVC 2018): generic checks, Eq. (1)-(4) re-stated, parameter count, errors."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from .attention_checks import ALL_CHECKS, perturb_parameters

from plugattn.attention import BAM, create_attention
from plugattn.parameters import count_parameters
from plugattn.testing import assert_rel_close

CHANNELS = 8


@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda c: c.__name__)
def test_generic_checks(check):
    check(lambda: BAM(CHANNELS, 4, dilation=2), CHANNELS)


def test_parameter_count_at_64_channels():
    hidden = 64 // 16
    channel_branch = 64 * hidden + 2 * hidden + hidden * 64 + 2 * 64  # fc, BN, fc, output BN (Eq. 2)
    dilated_conv = hidden * hidden * 3 * 3 + 2 * hidden  # conv without bias + BN
    spatial_branch = 64 * hidden + 2 * hidden + 2 * dilated_conv + hidden * 1 + 2 * 1  # ..., output BN (Eq. 3)
    assert count_parameters(BAM(64)) == channel_branch + spatial_branch == 1222


def test_dilation_is_used_by_both_3x3_convs():
    convs = [m for m in BAM(64, dilation=4).spatial_gate.modules() if isinstance(m, nn.Conv2d)]
    dilated = [c for c in convs if c.kernel_size == (3, 3)]
    assert [c.dilation for c in dilated] == [(4, 4), (4, 4)]
    assert [c.padding for c in dilated] == [(4, 4), (4, 4)]


def _eval_bn(bn, v):
    shape = (1, -1) + (1,) * (v.dim() - 2)
    scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).reshape(shape)
    return (v - bn.running_mean.reshape(shape)) * scale + bn.bias.reshape(shape)


def _reference_bam(module: BAM, x: torch.Tensor) -> torch.Tensor:
    """Eq. (1)-(4) of the paper written out with eval-mode BatchNorm."""
    gate = module.channel_gate
    hidden = F.relu(_eval_bn(gate.bn, x.mean(dim=(2, 3)) @ gate.fc1.weight.T))
    channel_att = _eval_bn(gate.bn_out, hidden @ gate.fc2.weight.T)  # Eq. (2): (B, C)
    body = module.spatial_gate.body
    s = x
    for conv, bn in [(body[0], body[1]), (body[3], body[4]), (body[6], body[7])]:
        s = F.relu(_eval_bn(bn, F.conv2d(s, conv.weight, padding=conv.padding, dilation=conv.dilation)))
    spatial_att = _eval_bn(body[10], F.conv2d(s, body[9].weight))  # Eq. (3): (B, 1, H, W)
    attention = torch.sigmoid(channel_att[:, :, None, None] + spatial_att)  # Eq. (4)
    return x + x * attention  # Eq. (1)


def test_matches_equations_1_to_4():
    module = perturb_parameters(BAM(CHANNELS, 4, dilation=2))
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    module.eval()
    x = torch.randn(2, CHANNELS, 7, 9)
    assert_rel_close(module(x), _reference_bam(module, x))


def test_output_is_input_scaled_between_one_and_two():
    """F' = F (1 + M(F)) with M in (0, 1): every element is scaled by a factor in (1, 2)."""
    module = perturb_parameters(BAM(CHANNELS, 4)).eval()
    x = torch.randn(2, CHANNELS, 6, 5)
    factor = module(x) / x
    assert ((factor > 1) & (factor < 2)).all()


def test_created_by_registry_name():
    module = create_attention("bam", 64, dilation=2)
    assert isinstance(module, BAM) and module.dilation == 2


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"channel": -1}, "channel must be an integer >= 1, got -1"),
        ({"channel": 64, "reduction": 0}, "reduction must be an integer >= 1, got 0"),
        ({"channel": 64, "dilation": 0}, "dilation must be an integer >= 1, got 0"),
        ({"channel": 64, "dilation": 1.5}, "dilation must be an integer >= 1, got 1.5"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BAM(**kwargs)


def test_wrong_input_rank_raises():
    with pytest.raises(ValueError, match=r"BAM expects input of shape \(B, C, H, W\)"):
        BAM(16)(torch.randn(2, 16, 4))
