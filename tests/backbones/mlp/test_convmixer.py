"""ConvMixer-768/32 and ConvMixer-1536/20 (plugattn/backbones/mlp/convmixer.py)."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..builders import model_fixture, on_meta, randomize_, timm_param_count, x64
from ..contract import (
    ContractCase, check_forward_backward, check_head_variants, check_keys_match_timm, check_param_count,
    check_timm_outputs_match, contract_tests,
)
from plugattn.backbones import list_backbones, load_external_weights
from plugattn.backbones.mlp.convmixer import ConvMixer, ConvMixerBlock, convmixer_768_32, convmixer_1536_20
from plugattn.backbones.registry import BACKBONES
from plugattn.parameters import count_parameters
from plugattn.testing import assert_rel_close

FACTORIES = {"convmixer_768_32": convmixer_768_32, "convmixer_1536_20": convmixer_1536_20}
# timm's published count, re-measured by building timm's model (test_1536_20_matches_timm)
CONVMIXER_1536_20_PARAMS = 51_625_960


def tiny(**kwargs):
    config = dict(dim=16, depth=2, kernel_size=3, patch_size=4)
    return ConvMixer(**{**config, **kwargs})


CASE = ContractCase(
    convmixer_768_32, "convmixer_768_32", "mlp", num_features=768, created_as="convmixer_768_32",
    params=21_110_248, timm_name="convmixer_768_32",  # timm's published count, re-measured by the contract test
    init_factory=tiny, init_kwargs=dict(num_classes=3), inject_sites=(("ConvMixerBlock", 32),),
    skip=("forward_backward", "head_variants"),  # on the ``model`` fixture and on ConvMixer-1536/20, below
)
model = model_fixture(CASE)
test_contract = contract_tests(CASE)


def test_1536_20_matches_timm():
    assert "convmixer_1536_20" in list_backbones("mlp")
    ours = on_meta(convmixer_1536_20)
    assert count_parameters(ours) == CONVMIXER_1536_20_PARAMS == timm_param_count("convmixer_1536_20")
    check_param_count(ours, BACKBONES.get("convmixer_1536_20").info["params"])
    check_keys_match_timm(convmixer_1536_20, "convmixer_1536_20")


@pytest.mark.parametrize("name,kernel,act", [("convmixer_768_32", 7, nn.ReLU), ("convmixer_1536_20", 9, nn.GELU)])
def test_variant_kernel_patch_and_activation(name, kernel, act):
    model = on_meta(FACTORIES[name])
    assert model.stem[0].kernel_size == (7, 7) and model.stem[0].stride == (7, 7)
    assert model.blocks[0][0].fn[0].kernel_size == (kernel, kernel)
    assert isinstance(model.stem[1], act) and isinstance(model.blocks[-1][2], act)


def test_timm_weights_load_and_match_768_32(x64):
    check_timm_outputs_match(convmixer_768_32(), "convmixer_768_32", x64[:1])


def test_timm_weights_load_and_match_1536_20():
    ours = on_meta(convmixer_1536_20).to_empty(device="cpu")
    check_timm_outputs_match(ours, "convmixer_1536_20", torch.randn(1, 3, 28, 28), on_meta=True)


def test_mismatched_weights_raise():
    with pytest.raises(ValueError, match=r"mis-shaped keys: stem\.0\.weight"):
        load_external_weights(on_meta(convmixer_768_32), on_meta(convmixer_1536_20).state_dict(), "timm")


def test_equations_2_and_3_restated():
    # z' = BN(act(DepthwiseConv(z))) + z ; z_next = BN(act(PointwiseConv(z'))) -- activation before BN
    torch.manual_seed(0)
    block = randomize_(ConvMixerBlock(8, kernel_size=5, act="gelu"), seed=2).eval()
    z = torch.randn(2, 8, 7, 7)

    def bn(x, norm):
        return F.batch_norm(x, norm.running_mean, norm.running_var, norm.weight, norm.bias, False, 0.0, norm.eps)

    dw, norm1 = block[0].fn[0], block[0].fn[2]
    with torch.no_grad():
        mid = bn(F.gelu(F.conv2d(z, dw.weight, dw.bias, padding=2, groups=8)), norm1) + z
        expected = bn(F.gelu(F.conv2d(mid, block[1].weight, block[1].bias)), block[3])
        assert_rel_close(block(z), expected, what="ConvMixer layer vs Eq. (2)-(3)")


def test_forward_backward(model, x64):
    check_forward_backward(model, x64, 10)
    model.eval()


def test_any_input_size(model):
    with torch.no_grad():
        assert model.forward_features(torch.randn(1, 3, 50, 77)).shape == (1, 768, 7, 11)


def test_num_classes_and_in_chans():
    check_head_variants(convmixer_1536_20, torch.zeros(2, 3, 64, 64), 1536, feature_hw=(9, 9))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(kernel_size=4), "kernel_size must be odd"),
        (dict(depth=0), "depth must be an integer >= 1, got 0"),
        (dict(act="gleu"), "did you mean 'gelu'"),
        (dict(num_classes=-2), "num_classes must be an integer >= 0, got -2"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tiny(**kwargs)
