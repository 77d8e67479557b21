"""MnasNet-B1 / A1 (Tan et al., CVPR 2019) against timm's mnasnet_100 / semnasnet_100."""
import pytest
import timm
import torch
import torchvision

from ..builders import model_fixture, on_meta, random_batch
from ..contract import (
    ContractCase, check_bad_load_raises, check_load_matches, check_mobile_bad_arguments, contract_tests,
)
from plugattn.attention.se import SELayer
from plugattn.backbones.cnn.mnasnet import MnasNet, mnasnet_a1, mnasnet_b1
from plugattn.parameters import count_parameters

# (factory, timm name, parameters of the timm model (measured), #blocks, #SE blocks)
VARIANTS = {
    "mnasnet_b1": (mnasnet_b1, "mnasnet_100", 4_383_312, 17, 0),
    "mnasnet_a1": (mnasnet_a1, "semnasnet_100", 3_887_038, 16, 8),
}
NAMES = sorted(VARIANTS)


def contract_case(name: str) -> ContractCase:
    factory, _, reference, blocks, _ = VARIANTS[name]
    return ContractCase(
        factory, name, "cnn", num_features=1280, created_as=name, model_class=MnasNet, reference_params=reference,
        train_on_fixture=True,
        heads_with_weights=True, feature_shape=(2, 1280, 2, 2), init_factory=factory,
        init_kwargs=dict(num_classes=10), inject_sites=(("MBConv", blocks),), fixture=f"{name}_model",
    )


B1, A1 = contract_case("mnasnet_b1"), contract_case("mnasnet_a1")
b1_model, a1_model = model_fixture(B1), model_fixture(A1)
test_b1_contract, test_a1_contract = contract_tests(B1), contract_tests(A1)


def test_b1_param_count_equals_torchvision_mnasnet1_0():
    assert count_parameters(on_meta(mnasnet_b1)) == count_parameters(on_meta(torchvision.models.mnasnet1_0, weights=None))


@pytest.mark.parametrize("name", NAMES)
def test_timm_weights_give_timm_outputs(name):
    factory, timm_name, *_ = VARIANTS[name]
    torch.manual_seed(0)
    check_load_matches(factory(), timm.create_model(timm_name, pretrained=False), "timm", random_batch(64, batch=1))


def test_mismatched_weights_are_refused():
    state = timm.create_model("semnasnet_100", pretrained=False).state_dict()
    check_bad_load_raises(mnasnet_a1(), state, "timm")


def test_bad_arguments():
    check_mobile_bad_arguments(mnasnet_b1)


@pytest.mark.parametrize("name", NAMES)
def test_se_placement_follows_fig_7(name):
    # A1: SE (ratio 0.25 of the input width, ReLU, sigmoid) in the 40-, 112- and 160-channel stages
    factory, *_, se_blocks = VARIANTS[name]
    se_layers = [m for m in factory().modules() if isinstance(m, SELayer)]
    assert len(se_layers) == se_blocks
    assert all(se.act_name == "relu" and se.gate_name == "sigmoid" for se in se_layers)
    assert [se.hidden_channels for se in se_layers] == ([6, 10, 10, 20, 28, 28, 40, 40] if se_blocks else [])
