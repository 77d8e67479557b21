"""CycleMLP-B1 (plugattn/backbones/cyclemlp.py)."""
import pytest
import torch
from torchvision.ops import deform_conv2d

from .backbone_checks import (
    check_deterministic_init, check_forward_backward, check_fx_matches_eager, check_head_variants, check_injection,
    check_param_count, count_params, on_meta, x64,
)
from plugattn.backbones import create_backbone, list_backbones
from plugattn.backbones.cyclemlp import CycleFC, CycleMLP, cycle_offsets, cyclemlp_b1
from plugattn.backbones.registry import BACKBONES
from plugattn.testing import assert_rel_close


def official_cyclemlp_b1_params() -> int:
    """The parameter count of the official ``CycleMLP_B1`` (ShoufaChen/CycleMLP), from its layer shapes."""

    def block(c: int) -> int:
        norms = 2 * (2 * c)
        mixer = c * c + 2 * (c * c + c) + (c * (c // 4) + c // 4) + ((c // 4) * 3 * c + 3 * c) + (c * c + c)
        channel_mlp = (c * 4 * c + 4 * c) + (4 * c * c + c)
        return norms + mixer + channel_mlp

    widths, depths = (64, 128, 320, 512), (2, 2, 4, 2)
    patch_embed = 3 * 7 * 7 * 64 + 64
    downsamples = sum(widths[i] * widths[i + 1] * 3 * 3 + widths[i + 1] for i in range(3))
    blocks = sum(d * block(c) for d, c in zip(depths, widths))
    return patch_embed + blocks + downsamples + 2 * 512 + 512 * 1000 + 1000


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return cyclemlp_b1(num_classes=10).eval()


def test_registered():
    assert "cyclemlp_b1" in list_backbones("mlp")
    assert isinstance(create_backbone("cyclemlp_b1", num_classes=3), CycleMLP)


def test_param_count_matches_official_config_and_reference():
    ours = on_meta(cyclemlp_b1)
    assert count_params(ours) == official_cyclemlp_b1_params() == 15_155_400
    check_param_count(ours, BACKBONES.get("cyclemlp_b1").info["params"])  # 15.2M


def test_offsets_cycle_through_the_pseudo_kernel():
    offsets = cycle_offsets(5, (1, 3)).flatten().tolist()
    assert offsets[0::2] == [0, 0, 0, 0, 0]  # dy
    assert offsets[1::2] == [0, 1, -1, 0, 1]  # dx = (c + 1) mod 3 - 1
    assert cycle_offsets(4, (5, 1)).flatten().tolist()[0::2] == [0, 1, 2, -2]


@pytest.mark.parametrize("kernel_size", [(1, 3), (3, 1), (1, 7), (5, 1)])
def test_cycle_fc_equals_deform_conv_with_the_fixed_offsets(kernel_size):
    """The official computation: torchvision's deform_conv2d, 1x1 kernel, the fixed offsets."""
    torch.manual_seed(0)
    layer = CycleFC(11, 6, kernel_size)
    x = torch.randn(2, 11, 5, 8)
    offsets = layer.offset.expand(2, -1, 5, 8)
    expected = deform_conv2d(x, offsets, layer.weight, layer.bias)
    assert_rel_close(layer(x), expected, what=f"CycleFC{kernel_size} vs deform_conv2d")


def test_cycle_fc_equals_a_direct_loop():
    """Eq. (3): y[j, h, w] = sum_c W[j, c] x[c, h, w + delta(c)] + b[j], zero outside the map."""
    torch.manual_seed(0)
    layer = CycleFC(4, 3, (1, 3))
    x = torch.randn(1, 4, 3, 5)
    expected = torch.zeros(1, 3, 3, 5)
    for j in range(3):
        for h in range(3):
            for w in range(5):
                total = layer.bias[j].clone()
                for c in range(4):
                    source = w + (c + 1) % 3 - 1
                    if 0 <= source < 5:
                        total = total + layer.weight[j, c, 0, 0] * x[0, c, h, source]
                expected[0, j, h, w] = total
    assert_rel_close(layer(x), expected, what="CycleFC vs loop")


def test_forward_backward(x64):
    torch.manual_seed(0)
    check_forward_backward(cyclemlp_b1(num_classes=4, drop_path_rate=0.1), x64, 4)


def test_num_classes_and_in_chans():
    check_head_variants(cyclemlp_b1, torch.zeros(2, 3, 64, 64), 512, feature_hw=(2, 2))
    assert on_meta(cyclemlp_b1).default_input_size == 224


def test_fx_trace_equals_eager_at_two_sizes(model, x64):
    check_fx_matches_eager(model, x64)
    check_fx_matches_eager(model, torch.randn(1, 3, 96, 80))
    with torch.no_grad():
        assert model.forward_features(torch.randn(1, 3, 96, 80)).shape == (1, 512, 3, 3)


def test_deterministic_init():
    check_deterministic_init(CycleMLP, layers=(1, 1), embed_dims=(8, 16), transitions=(True, True), mlp_ratios=(4, 4))


def test_init_as_official():
    torch.manual_seed(0)
    layer = cyclemlp_b1().network[4][0].attn.sfc_h
    assert abs(layer.weight.detach().std().item() - 0.02) < 0.002
    assert float(layer.bias.detach().abs().max()) == 0.0


def test_official_offsets_are_kept_as_a_buffer(model):
    keys = model.state_dict()
    assert keys["network.0.0.attn.sfc_h.offset"].shape == (1, 128, 1, 1)
    assert keys["network.0.0.attn.sfc_h.weight"].shape == (64, 64, 1, 1)


def test_inject_eca_after_every_block(model, x64):
    check_injection(model, "CycleBlock", x64[:1], expected_sites=10)


def test_inject_after_patch_embedding(model, x64):
    check_injection(model, "PatchEmbed", x64[:1], expected_sites=4)  # the stem and 3 downsamplings


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"kernel_size must be \(1, S\) or \(S, 1\), got \(3, 3\)"):
        CycleFC(4, 4, (3, 3))
    with pytest.raises(ValueError, match="in_channels must be an integer >= 1, got 0"):
        CycleFC(0, 4, (1, 3))
    with pytest.raises(ValueError, match="one entry per stage"):
        CycleMLP(layers=(1, 1), embed_dims=(8,), transitions=(True,), mlp_ratios=(4,))
