"""Network In Network, CIFAR-10 (plugattn/backbones/cnn/nin.py)."""
import pytest
import torch
import torch.nn as nn

from ..builders import model_fixture, x32
from ..contract import ContractCase, contract_tests
from plugattn.backbones import create_backbone
from plugattn.backbones.cnn.nin import NIN, MlpConv, nin_cifar
from plugattn.backbones.registry import BACKBONES
from plugattn.parameters import count_parameters


CASE = ContractCase(
    nin_cifar, "nin_cifar", "cnn", num_features=192, size=32, map_features=True, feature_hw=(8, 8),
    train_on_fixture=True,
    default_input_size=32, feature_shape=(2, 192, 8, 8), init_factory=nin_cifar, inject_sites=(("MlpConv", 3),),
)
model = model_fixture(CASE)
test_contract = contract_tests(CASE)


def test_param_count_from_the_layer_table(model):
    # conv weights + biases, layer by layer (Caffe model-zoo NIN CIFAR-10 widths)
    expected = (
        (3 * 25 * 192 + 192) + (192 * 160 + 160) + (160 * 96 + 96)  # mlpconv 1: 5x5, 1x1, 1x1
        + (96 * 25 * 192 + 192) + 2 * (192 * 192 + 192)  # mlpconv 2: 5x5, 1x1, 1x1
        + (192 * 9 * 192 + 192) + (192 * 192 + 192)  # mlpconv 3: 3x3, 1x1
        + (192 * 10 + 10)  # per-class 1x1 maps
    )
    assert expected == 966_986
    assert count_parameters(model) == expected
    assert BACKBONES.get("nin_cifar").info["params"] == expected


def test_no_fully_connected_layer_and_global_average_pooling(model, x32):
    assert not any(isinstance(m, nn.Linear) for m in model.modules())
    model.eval()
    with torch.no_grad():
        maps = model.head(model.forward_features(x32))  # (2, 10, 8, 8) per-class maps
        torch.testing.assert_close(model(x32), maps.mean(dim=(2, 3)))


def test_init_normal_005(model):
    weight = model.mlpconv2[0].weight.detach()
    assert abs(weight.std().item() - 0.05) < 0.005
    assert float(model.mlpconv2[0].bias.detach().abs().max()) == 0.0


def test_registry():
    assert BACKBONES.get("nin").name == "nin_cifar"
    model = create_backbone("nin_cifar", num_classes=100)
    assert isinstance(model, NIN) and model.head[0].out_channels == 100


def test_bad_arguments():
    with pytest.raises(ValueError, match="drop_rate must be in"):
        NIN(drop_rate=1.0)
    with pytest.raises(ValueError, match="num_classes"):
        nin_cifar(num_classes=-1)
    with pytest.raises(ValueError, match="in_chans"):
        nin_cifar(in_chans=0)
    assert MlpConv(4, (8, 6), kernel_size=3).out_channels == 6
