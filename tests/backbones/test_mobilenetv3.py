"""MobileNetV3 Large / Small (Howard et al., ICCV 2019) against torchvision."""
import pytest
import torch
import torchvision

from .backbone_checks import (
    check_backbone_contract, check_bad_load_raises, check_forward_backward, check_injection, check_load_matches,
    check_mobile_bad_arguments, check_param_count, random_batch,
)
from plugattn.attention.se import SELayer
from plugattn.backbones import BACKBONES, create_backbone
from plugattn.backbones.mobilenetv3 import InvertedResidual, mobilenet_v3_large, mobilenet_v3_small

# (factory, torchvision reference, parameters measured on torchvision, last_channel, #bnecks, #SE bnecks)
VARIANTS = {
    "mobilenet_v3_large": (mobilenet_v3_large, torchvision.models.mobilenet_v3_large, 5_483_032, 1280, 960, 15, 8),
    "mobilenet_v3_small": (mobilenet_v3_small, torchvision.models.mobilenet_v3_small, 2_542_856, 1024, 576, 11, 9),
}
NAMES = sorted(VARIANTS)


@pytest.mark.parametrize("name", NAMES)
def test_param_count_matches_torchvision(name):
    factory, _, reference, *_ = VARIANTS[name]
    check_param_count(factory(), reference)
    assert BACKBONES.get(name).info["params"] == reference


@pytest.mark.parametrize("name", NAMES)
def test_forward_backward(name):
    check_forward_backward(create_backbone(name, num_classes=10), random_batch(64), 10)


@pytest.mark.parametrize("name", NAMES)
def test_backbone_contract(name):
    factory, _, _, last_channel, feature_width, *_ = VARIANTS[name]
    # num_classes=0 keeps the hidden Linear + h-swish of the head: pre-logits of last_channel width
    check_backbone_contract(factory, pooled_width=last_channel, feature_width=feature_width)


@pytest.mark.parametrize("name", NAMES)
def test_inject_eca_after_every_bneck(name):
    *_, blocks, _ = VARIANTS[name]
    check_injection(create_backbone(name, num_classes=10), "InvertedResidual", random_batch(64, batch=1), expected_sites=blocks)


@pytest.mark.parametrize("name", NAMES)
def test_torchvision_weights_give_torchvision_outputs(name):
    factory, reference, *_ = VARIANTS[name]
    torch.manual_seed(0)
    check_load_matches(factory(), reference(weights=None), "torchvision", random_batch(64, batch=1))


def test_mismatched_weights_are_refused():
    state = torchvision.models.mobilenet_v3_small(weights=None).state_dict()
    check_bad_load_raises(mobilenet_v3_small(), state, "torchvision")


def test_bad_arguments():
    check_mobile_bad_arguments(mobilenet_v3_large)


@pytest.mark.parametrize("name", NAMES)
def test_se_blocks_follow_the_paper(name):
    # Tables 1/2 mark the SE bnecks; Sec. 5.3: SE width = expansion / 4 rounded to 8, hard-sigmoid gate
    factory, *_, se_blocks = VARIANTS[name]
    model = factory()
    se_layers = [m for m in model.modules() if isinstance(m, SELayer)]
    assert len(se_layers) == se_blocks
    for se in se_layers:
        quarter = se.channel / 4
        expected = max(8, int(quarter + 4) // 8 * 8)
        expected = expected + 8 if expected < 0.9 * quarter else expected
        assert se.hidden_channels == expected
        assert se.gate_name == "hardsigmoid" and se.act_name == "relu"


def test_hard_swish_in_the_late_blocks():
    # Table 1: the first six bnecks use ReLU, the rest h-swish
    blocks = [m for m in mobilenet_v3_large().modules() if isinstance(m, InvertedResidual)]
    first_acts = [type(b.block[0][2]).__name__ for b in blocks[1:]]
    assert first_acts[:5] == ["ReLU"] * 5 and set(first_acts[5:]) == {"Hardswish"}
