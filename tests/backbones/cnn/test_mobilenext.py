"""MobileNeXt 1.0x (Zhou et al., ECCV 2020). No torchvision / timm model exists, so the architecture
is checked against a per-layer parameter formula written here from the paper's Table 3 and the
authors' code, and against the published (rounded) 3.5M."""
import math

import pytest
import torch

from ..builders import model_fixture, on_meta
from ..contract import ContractCase, check_mobile_bad_arguments, contract_tests
from plugattn.backbones.cnn.mobilenext import MobileNeXt, SandGlass, mobilenext_100
from plugattn.parameters import count_parameters

PUBLISHED_PARAMS_M = 3.5  # authors' README table, MobileNeXt-1.00: 3.5M (rounded)
# Table 3 rows: t, c, n, s
TABLE_3 = [(2, 96, 1, 2), (6, 144, 1, 1), (6, 192, 3, 2), (6, 288, 3, 2), (6, 384, 4, 1), (6, 576, 4, 2), (6, 960, 3, 1), (6, 1280, 1, 1)]


def conv_bn(c_in: int, c_out: int, k: int, depthwise: bool = False) -> int:
    weights = k * k * c_out if depthwise else k * k * c_in * c_out
    return weights + 2 * c_out


def sandglass_params(c_in: int, c_out: int, t: int, s: int, first: bool, single: bool) -> int:
    hidden = c_in // t
    if hidden < c_out / 6:
        hidden = 16 * int(math.ceil(c_out / 6) / 16 + 0.5)  # nearest multiple of 16
    reduce_expand = conv_bn(c_in, hidden, 1) + conv_bn(hidden, c_out, 1)
    dw_in, dw_out = conv_bn(c_in, c_in, 3, True), conv_bn(c_out, c_out, 3, True)
    if t == 2 or single or not first:
        return dw_in + reduce_expand + dw_out  # the full sandglass
    return reduce_expand + (dw_out if s == 2 else 0)  # width-changing first block of a stage


def table_3_param_count(num_classes: int = 1000) -> int:
    total, c_in = conv_bn(3, 32, 3), 32
    for t, c, n, s in TABLE_3:
        for index in range(n):
            total += sandglass_params(c_in, c, t, s, first=index == 0, single=n == 1 and s == 1)
            c_in = c
    return total + 1280 * num_classes + num_classes


CASE = ContractCase(
    mobilenext_100, "mobilenext_100", "cnn", num_features=1280, created_as="mobilenext", model_class=MobileNeXt,
    train_on_fixture=True,
    reference_params=3_500_000,  # the published PUBLISHED_PARAMS_M, as the registry records it
    heads_with_weights=True, feature_shape=(2, 1280, 2, 2),
    init_factory=mobilenext_100, init_kwargs=dict(num_classes=10),
    inject_sites=(("SandGlass", sum(n for *_, n, _ in TABLE_3)),),
)
model = model_fixture(CASE)
test_contract = contract_tests(CASE)


def test_param_count_matches_table_and_published_figure():
    measured = count_parameters(on_meta(mobilenext_100))
    assert measured == table_3_param_count()
    assert round(measured / 1e6, 1) == PUBLISHED_PARAMS_M


def test_stage_shapes_follow_table_3(model):
    x = torch.randn(1, 3, 224, 224)
    sizes = {}
    with torch.no_grad():
        for layer in model.features:
            x = layer(x)
            sizes[x.shape[1]] = x.shape[-1]
    assert sizes == {32: 112, 96: 56, 144: 56, 192: 28, 288: 14, 384: 14, 576: 7, 960: 7, 1280: 7}


def test_bad_arguments():
    check_mobile_bad_arguments(mobilenext_100)
    with pytest.raises(ValueError, match="stride"):
        SandGlass(96, 96, stride=3, reduction=6)


def test_sandglass_is_wide_at_both_ends():
    # Fig. 3(b): depthwise on M, reduce to M/t, expand to N, depthwise on N; identity between wide ends
    block = SandGlass(192, 192, stride=1, reduction=6).eval()
    convs = [m for m in block.conv if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.groups) for c in convs] == [(192, 192, 192), (192, 32, 1), (32, 192, 1), (192, 192, 192)]
    torch.nn.init.zeros_(block.conv[-1].weight)  # zero the last BN scale: the branch is 0
    x = torch.randn(2, 192, 8, 8)
    assert torch.equal(block(x), x)
