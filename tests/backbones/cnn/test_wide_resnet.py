"""Wide ResNet WRN-28-10 for CIFAR (plugattn/backbones/cnn/wide_resnet.py)."""
import pytest
import torch
import torch.nn as nn

from ..builders import on_meta, x32
from ..contract import (
    check_deterministic_init, check_forward_backward, check_fx_matches_eager, check_head_variants,
    check_injection,
)
from plugattn.backbones import create_backbone
from plugattn.backbones.registry import BACKBONES
from plugattn.backbones.cnn.wide_resnet import WideBasicBlock, WideResNet, wide_resnet28_10
from plugattn.parameters import count_parameters


def wrn_param_formula(depth, k, num_classes):
    """Zagoruyko & Komodakis Table 1 counted by hand: 3x3 convs, 1x1 projections, BN (2 per
    channel), linear head."""
    n = (depth - 4) // 6
    widths = [16, 16 * k, 32 * k, 64 * k]
    total = 3 * 9 * 16  # conv1
    for g in range(3):
        c_in, c_out = widths[g], widths[g + 1]
        for b in range(n):
            first_in = c_in if b == 0 else c_out
            total += 2 * first_in + 9 * first_in * c_out + 2 * c_out + 9 * c_out * c_out  # BN, conv, BN, conv
            if b == 0:
                total += first_in * c_out  # 1x1 projection shortcut
    total += 2 * widths[3] + widths[3] * num_classes + num_classes  # final BN, fc
    return total


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    return WideResNet(depth=16, widen_factor=2, num_classes=10)


def test_param_count_wrn_28_10():
    model = on_meta(wide_resnet28_10)
    assert wrn_param_formula(28, 10, 10) == 36_479_194
    assert count_parameters(model) == 36_479_194
    assert count_parameters(on_meta(wide_resnet28_10, num_classes=100)) == wrn_param_formula(28, 10, 100) == 36_536_884
    # the paper's table: 36.5M
    assert abs(count_parameters(model) - 36.5e6) <= 0.005 * 36.5e6
    assert BACKBONES.get("wide_resnet28_10").info["params"] == 36_479_194


def test_structure_wrn_28_10():
    model = on_meta(wide_resnet28_10)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 1 + 3 * 4 * 2 + 3  # stem, 12 blocks of 2 convs, 3 projections
    assert all(c.bias is None for c in convs)
    assert [len(g) for g in (model.block1, model.block2, model.block3)] == [4, 4, 4]
    widths = [group[0].conv1.out_channels for group in (model.block1, model.block2, model.block3)]
    assert widths == [160, 320, 640]


def test_forward_backward_wrn_28_10(x32):
    torch.manual_seed(0)
    check_forward_backward(wide_resnet28_10(), x32, 10)


def test_num_classes_and_in_chans():
    check_head_variants(wide_resnet28_10, torch.zeros(2, 3, 32, 32), 640, feature_hw=(8, 8))


def test_fx_trace_equals_eager(small, x32):
    check_fx_matches_eager(small, x32)


def test_deterministic_init():
    check_deterministic_init(WideResNet, depth=10, widen_factor=2)


def test_projection_sees_preactivated_input():
    block = WideBasicBlock(4, 8, stride=2).eval()
    x = torch.randn(1, 4, 6, 6)
    with torch.no_grad():
        activated = torch.relu(block.bn1(x))
        branch = block.conv2(torch.relu(block.bn2(block.conv1(activated))))
        torch.testing.assert_close(block(x), branch + block.shortcut(activated))


def test_inject_eca_after_block(small, x32):
    check_injection(small, "WideBasicBlock", x32[:1], expected_sites=6)


def test_registry():
    assert BACKBONES.get("wrn28_10").name == "wide_resnet28_10"
    assert BACKBONES.get("wide_resnet28_10").info["venue"] == "BMVC"
    assert create_backbone("wide_resnet28_10", num_classes=100).default_input_size == 32


def test_bad_arguments():
    with pytest.raises(ValueError, match="depth must be 6n \\+ 4"):
        WideResNet(depth=27)
    with pytest.raises(ValueError, match="widen_factor"):
        WideResNet(widen_factor=0)
    with pytest.raises(ValueError, match="drop_rate must be in"):
        WideResNet(drop_rate=-0.1)
