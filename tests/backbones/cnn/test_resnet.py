"""ResNet-18/34/50/101/152 and Wide ResNet-50-2 (plugattn/backbones/cnn/resnet.py)."""
import pytest
import timm
import torch
import torchvision

from ..builders import model_fixture, on_meta, randomize_, x64
from ..contract import (
    ContractCase, check_forward_backward, check_fx_matches_eager, check_head_variants, check_injection,
    check_load_matches, check_random_reference_loads, check_reference_layout, contract_tests,
)
from plugattn.backbones import create_backbone, list_backbones, load_external_weights
from plugattn.backbones.registry import BACKBONES
from plugattn.backbones.cnn.resnet import BasicBlock, Bottleneck, ResNet, resnet18, resnet50

# torchvision's published counts (weights docs), re-measured by building torchvision's models
REFERENCE_PARAMS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
    "wide_resnet50_2": 68_883_240,
}


CASE = ContractCase(
    resnet50, "resnet50", "cnn", num_features=2048, map_features=True, feature_hw=(2, 2),
    train_on_fixture=True,
    feature_shape=(2, 2048, 2, 2), init_factory=resnet18, inject_sites=(("Bottleneck", 16),),
)
model = model_fixture(CASE)
test_contract = contract_tests(CASE)


@pytest.mark.parametrize("name", sorted(REFERENCE_PARAMS))
def test_param_count_and_keys_identical_to_torchvision(name):
    check_reference_layout(BACKBONES.get(name).factory, getattr(torchvision.models, name), REFERENCE_PARAMS[name],
                           registry_name=name)


def test_forward_backward_basic_block():
    torch.manual_seed(0)
    check_forward_backward(resnet18(num_classes=3), torch.randn(2, 3, 64, 64), 3)


@pytest.mark.parametrize("name,features", [("resnet18", 512), ("wide_resnet50_2", 2048)])
def test_num_classes_and_in_chans(name, features):
    check_head_variants(BACKBONES.get(name).factory, torch.zeros(2, 3, 64, 64), features, feature_hw=(2, 2))


def test_fx_trace_basic_block():
    check_fx_matches_eager(resnet18(num_classes=4), torch.randn(1, 3, 64, 64))


def test_init_follows_torchvision():
    torch.manual_seed(0)
    model = resnet50(zero_init_residual=True)
    assert all(float(m.bn3.weight.detach().abs().sum()) == 0.0 for m in model.modules() if isinstance(m, Bottleneck))
    assert float(model.bn1.weight.detach().min()) == 1.0 and float(model.bn1.bias.detach().abs().max()) == 0.0
    # Kaiming normal, fan_out, ReLU gain: std = sqrt(2 / (64 * 7 * 7))
    std = model.conv1.weight.detach().std().item()
    assert abs(std - (2.0 / (64 * 49)) ** 0.5) < 0.1 * std


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_torchvision_weights_load_and_match(name, x64):
    reference = randomize_(getattr(torchvision.models, name)(weights=None), seed=3)
    ours = BACKBONES.get(name).factory()
    check_load_matches(ours, reference, "torchvision", x64[:1])


@pytest.mark.parametrize("name", ["resnet34", "resnet101", "resnet152", "wide_resnet50_2"])
def test_torchvision_weights_load_and_match_large(name, x64):
    check_random_reference_loads(BACKBONES.get(name).factory, getattr(torchvision.models, name), "torchvision", x64[:1])


def test_timm_resnet50_weights_load_and_match(x64):
    timm_resnet50 = lambda: timm.create_model("resnet50", pretrained=False)  # noqa: E731
    check_random_reference_loads(resnet50, timm_resnet50, "timm", x64[:1], seed=5)


def test_mismatched_weights_raise():
    ours = on_meta(resnet18)
    with pytest.raises(ValueError, match=r"mis-shaped keys: layer1\.0\.conv1\.weight"):
        load_external_weights(ours, on_meta(torchvision.models.resnet50).state_dict(), "torchvision")
    state = on_meta(torchvision.models.resnet18).state_dict()
    del state["fc.bias"]
    with pytest.raises(ValueError, match=r"missing keys: fc\.bias"):
        load_external_weights(ours, state, "torchvision")


def test_inject_eca_after_basic_block():
    check_injection(resnet18(num_classes=5), "BasicBlock", torch.randn(1, 3, 64, 64), expected_sites=8)


def test_registry():
    names = list_backbones("cnn")
    for name in REFERENCE_PARAMS:
        assert name in names
        info = BACKBONES.get(name).info
        assert info["family"] == "cnn" and info["year"] == 2016 and info["params"] == REFERENCE_PARAMS[name]
    model = create_backbone("ResNet18", num_classes=7)
    assert isinstance(model, ResNet) and model.fc.out_features == 7
    assert BACKBONES.get("wrn50_2").name == "wide_resnet50_2"


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_classes"):
        resnet18(num_classes=-1)
    with pytest.raises(ValueError, match="in_chans"):
        resnet18(in_chans=0)
    with pytest.raises(ValueError, match="layers must be 4 integers"):
        ResNet(BasicBlock, [2, 2, 2])
    with pytest.raises(ValueError, match="BasicBlock supports only groups=1"):
        ResNet(BasicBlock, [1, 1, 1, 1], groups=2)
    with pytest.raises(ValueError, match="replace_stride_with_dilation"):
        ResNet(Bottleneck, [1, 1, 1, 1], replace_stride_with_dilation=[False])
    with pytest.raises(ValueError, match="unknown backbone 'resnet5'"):
        create_backbone("resnet5")
