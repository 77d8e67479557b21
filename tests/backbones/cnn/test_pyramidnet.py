"""PyramidNet, CIFAR (110 layers, alpha 48) and ImageNet (200 layers, alpha 300) (plugattn/backbones/cnn/pyramidnet.py)."""
import pytest
import torch

from ..builders import model_fixture, on_meta
from ..contract import (
    ContractCase, check_forward_backward, check_fx_matches_eager, check_head_variants, check_injection,
    check_param_count, contract_tests,
)
from plugattn.backbones import create_backbone
from plugattn.backbones.cnn.pyramidnet import (
    PyramidBasicBlock,
    PyramidBottleneck,
    PyramidNet,
    pyramidnet110_a48,
    pyramidnet200_a300,
)
from plugattn.backbones.registry import BACKBONES
from plugattn.parameters import count_parameters


CASE = ContractCase(
    pyramidnet110_a48, "pyramidnet110_a48", "cnn", num_features=64, size=32, map_features=True, feature_hw=(8, 8),
    train_on_fixture=True,
    default_input_size=32, init_factory=PyramidNet, init_kwargs=dict(dataset="cifar", depth=20, alpha=12),
    inject_sites=(("PyramidBasicBlock", 54),),
)
model = model_fixture(CASE)
test_contract = contract_tests(CASE)


def test_param_count_cifar_110_alpha_48(model):
    # exact count of the authors' PyTorch code (dyhan0920/PyramidNet-PyTorch), built with
    # PyramidNet(110, 48, 10); the paper's table rounds it to 1.7M
    assert count_parameters(model) == 1_772_706
    check_param_count(model, BACKBONES.get("pyramidnet110_a48").info["params"])


def test_param_count_imagenet_200_alpha_300():
    model = on_meta(pyramidnet200_a300)
    check_param_count(model, 62_100_000)  # paper: 62.1M
    assert count_parameters(model) == 62_368_168
    assert model.num_features == (64 + 300) * 4  # output feature dimension 1456 in the paper's table


def test_widths_grow_additively():
    """Eq. 2: width after unit k is 16 + k * alpha / N (rounded), N = 54 units; the last is 16 + 48."""
    model = on_meta(pyramidnet110_a48)
    units = [u for stage in model.layers for u in stage]
    assert len(units) == 54 and all(isinstance(u, PyramidBasicBlock) for u in units)
    widths = [u.conv1.out_channels for u in units]
    assert widths == [int(round(16 + (k + 1) * 48 / 54)) for k in range(54)]
    assert widths[-1] == 64 and model.num_features == 64


def test_unit_has_no_relu_after_addition_and_zero_padded_shortcut():
    unit = PyramidBasicBlock(4, 6, stride=2).eval()
    x = torch.randn(1, 4, 6, 6)
    with torch.no_grad():
        branch = unit.bn3(unit.conv2(torch.relu(unit.bn2(unit.conv1(unit.bn1(x))))))
        pooled = torch.nn.functional.avg_pool2d(x, 2)
        shortcut = torch.cat([pooled, torch.zeros(1, 2, 3, 3)], 1)
        torch.testing.assert_close(unit(x), branch + shortcut)


def test_forward_backward_imagenet_bottleneck_variant():
    torch.manual_seed(0)
    small = PyramidNet("imagenet", depth=50, alpha=24, num_classes=5)
    assert small.default_input_size == 224
    check_forward_backward(small, torch.randn(2, 3, 64, 64), 5)
    check_fx_matches_eager(small, torch.randn(1, 3, 64, 64))
    check_injection(small, "PyramidBottleneck", torch.randn(1, 3, 64, 64), expected_sites=16)


def test_odd_sizes_keep_shortcut_and_branch_aligned():
    small = PyramidNet("cifar", depth=20, alpha=12, num_classes=3).eval()
    assert small(torch.randn(1, 3, 33, 31)).shape == (1, 3)


def test_num_classes_and_in_chans_imagenet_variant():
    small_imagenet = lambda **kw: PyramidNet("imagenet", depth=50, alpha=24, **kw)  # noqa: E731
    check_head_variants(small_imagenet, torch.zeros(1, 3, 64, 64), (64 + 24) * 4, feature_hw=(2, 2))


def test_registry():
    assert BACKBONES.get("pyramidnet110").name == "pyramidnet110_a48"
    assert BACKBONES.get("pyramidnet200").info["params"] == 62_100_000
    built = create_backbone("pyramidnet110_a48", num_classes=100)
    assert isinstance(built, PyramidNet) and built.fc.out_features == 100


def test_bad_arguments():
    with pytest.raises(ValueError, match="dataset must be one of 'cifar', 'imagenet'"):
        PyramidNet("imagenett")
    with pytest.raises(ValueError, match="must be 6n \\+ 2"):
        PyramidNet("cifar", depth=111)
    with pytest.raises(ValueError, match="depth for an ImageNet PyramidNet must be one of"):
        PyramidNet("imagenet", depth=110)
    with pytest.raises(ValueError, match="alpha must be a number >= 0"):
        PyramidNet("cifar", alpha=-1)
    with pytest.raises(ValueError, match="block must be one of"):
        PyramidNet("cifar", block="wide")
    with pytest.raises(ValueError, match="cannot narrow"):
        PyramidBottleneck(512, 16)
