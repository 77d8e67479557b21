"""DenseNet-121/169/201 (plugattn/backbones/cnn/densenet.py)."""
import pytest
import torch
import torchvision

from ..builders import materialize_random, model_fixture, on_meta, randomize_, x64
from ..contract import (
    ContractCase, check_injection, check_random_reference_loads, check_reference_layout, contract_tests,
)
from plugattn.backbones import create_backbone, load_external_weights
from plugattn.backbones.cnn.densenet import DenseBlock, DenseLayer, DenseNet, densenet121, densenet169, densenet201
from plugattn.backbones.registry import BACKBONES

# torchvision's published counts, re-measured by building torchvision's models
REFERENCE_PARAMS = {"densenet121": 7_978_856, "densenet169": 14_149_480, "densenet201": 20_013_928}
FACTORIES = {"densenet121": densenet121, "densenet169": densenet169, "densenet201": densenet201}


CASE = ContractCase(
    densenet121, "densenet121", "cnn", num_features=1024, map_features=True, feature_hw=(2, 2),
    train_on_fixture=True,
    init_factory=DenseNet, init_kwargs=dict(growth_rate=8, block_config=(2, 2), num_init_features=16, num_classes=3),
    inject_sites=(("DenseBlock", 4),),
)
model = model_fixture(CASE)
test_contract = contract_tests(CASE)


@pytest.mark.parametrize("name", sorted(REFERENCE_PARAMS))
def test_param_count_and_keys_match_torchvision(name):
    check_reference_layout(FACTORIES[name], getattr(torchvision.models, name), REFERENCE_PARAMS[name], registry_name=name)


def test_channel_growth_follows_table_1():
    # 64 + 6*32 = 256 -> 128; 128 + 12*32 = 512 -> 256; 256 + 24*32 = 1024 -> 512; 512 + 16*32 = 1024
    model = on_meta(densenet121)
    assert model.features.transition1.conv.out_channels == 128
    assert model.features.transition2.conv.out_channels == 256
    assert model.features.transition3.conv.out_channels == 512
    assert model.num_features == 1024
    assert on_meta(densenet169).num_features == 1664 and on_meta(densenet201).num_features == 1920


def test_dense_connectivity_against_direct_statement():
    """Eq. 2 written out: x_l = H_l([x_0, ..., x_{l-1}]); the block returns [x_0, x_1, x_2]."""
    block = randomize_(DenseBlock(2, 8, growth_rate=4, bn_size=2), seed=2).eval()
    x0 = torch.randn(1, 8, 5, 6)
    with torch.no_grad():
        x1 = block.denselayer1(x0)
        x2 = block.denselayer2(torch.cat([x0, x1], 1))
        torch.testing.assert_close(block(x0), torch.cat([x0, x1, x2], 1))


@pytest.mark.parametrize("name", sorted(REFERENCE_PARAMS))
def test_torchvision_weights_load_and_match(name, x64):
    check_random_reference_loads(FACTORIES[name], getattr(torchvision.models, name), "torchvision", x64[:1])


def test_legacy_torchvision_keys_are_renamed(x64):
    """Old torchvision checkpoints spell 'denselayer1.norm.1.weight' and have no BN counters;
    they load after renaming."""
    reference = materialize_random(torchvision.models.densenet121, seed=5)
    legacy = {}
    for key, value in reference.state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue
        for part in ("norm1", "norm2", "conv1", "conv2"):
            if "denselayer" in key and f".{part}." in key:
                key = key.replace(f".{part}.", f".{part[:-1]}.{part[-1]}.")
        legacy[key] = value
    assert "features.denseblock1.denselayer1.norm.1.weight" in legacy
    ours = on_meta(densenet121).to_empty(device="cpu")
    load_external_weights(ours, legacy, "torchvision")
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(x64[:1]), reference(x64[:1]), rtol=1e-5, atol=1e-6)


def test_mismatched_weights_raise():
    with pytest.raises(ValueError, match=r"unexpected keys: features\.denseblock3\.denselayer25"):
        load_external_weights(on_meta(densenet121), on_meta(torchvision.models.densenet169).state_dict(), "torchvision")


def test_inject_eca_after_dense_layer():
    small = DenseNet(growth_rate=8, block_config=(2, 3), num_init_features=16, num_classes=3)
    check_injection(small, "DenseLayer", torch.randn(1, 3, 32, 32), expected_sites=5)


def test_registry():
    model = create_backbone("densenet121", num_classes=5)
    assert isinstance(model, DenseNet) and model.classifier.out_features == 5
    assert sum(isinstance(m, DenseLayer) for m in model.modules()) == 58
    assert BACKBONES.get("densenet201").info["year"] == 2017


def test_bad_arguments():
    with pytest.raises(ValueError, match="growth_rate"):
        DenseNet(growth_rate=0)
    with pytest.raises(ValueError, match="block_config must list"):
        DenseNet(block_config=())
    with pytest.raises(ValueError, match="drop_rate must be in"):
        DenseNet(drop_rate=1.5)
    with pytest.raises(ValueError, match="num_classes"):
        densenet121(num_classes=-1)
