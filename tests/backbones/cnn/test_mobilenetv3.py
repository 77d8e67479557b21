"""MobileNetV3 Large / Small (Howard et al., ICCV 2019) against torchvision."""
import pytest
import torch
import torchvision

from ..builders import model_fixture, random_batch
from ..contract import (
    ContractCase, check_bad_load_raises, check_load_matches, check_mobile_bad_arguments, contract_tests,
)
from plugattn.attention.se import SELayer
from plugattn.backbones.cnn.mobilenetv3 import InvertedResidual, MobileNetV3, mobilenet_v3_large, mobilenet_v3_small

# (factory, torchvision reference, parameters measured on torchvision, last_channel, feature width, #bnecks,
#  #SE bnecks)
VARIANTS = {
    "mobilenet_v3_large": (mobilenet_v3_large, torchvision.models.mobilenet_v3_large, 5_483_032, 1280, 960, 15, 8),
    "mobilenet_v3_small": (mobilenet_v3_small, torchvision.models.mobilenet_v3_small, 2_542_856, 1024, 576, 11, 9),
}
NAMES = sorted(VARIANTS)


def contract_case(name: str) -> ContractCase:
    factory, _, reference, last_channel, feature_width, blocks, _ = VARIANTS[name]
    # num_classes=0 keeps the hidden Linear + h-swish of the head: pre-logits of last_channel width
    return ContractCase(
        factory, name, "cnn", num_features=last_channel, created_as=name, model_class=MobileNetV3,
        train_on_fixture=True,
        reference_params=reference, heads_with_weights=True, feature_shape=(2, feature_width, 2, 2),
        init_factory=factory, init_kwargs=dict(num_classes=10), inject_sites=(("InvertedResidual", blocks),),
        fixture=f"{name}_model",
    )


LARGE, SMALL = contract_case("mobilenet_v3_large"), contract_case("mobilenet_v3_small")
large_model, small_model = model_fixture(LARGE), model_fixture(SMALL)
test_large_contract, test_small_contract = contract_tests(LARGE), contract_tests(SMALL)


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
