"""Vision Permutator ViP-Small/7 (plugattn/backbones/vip.py)."""
from functools import partial

import pytest
import torch

from .backbone_checks import (
    check_deterministic_init, check_fixed_input_size, check_forward_backward, check_fx_matches_eager,
    check_head_variants, check_injection, check_param_count, count_params, on_meta,
)
from plugattn.backbones import create_backbone, list_backbones
from plugattn.backbones.registry import BACKBONES
from plugattn.backbones.vip import (
    VisionPermutator,
    WeightedPermuteMLP,
    reweight_branches,
    vip_s7,
)
from plugattn.backbones.vit import Mlp
from plugattn.testing import assert_rel_close

SMALL = 56  # a 8 x 8 then 4 x 4 grid: segment counts 8 and 4 divide 192 and 384


def official_vip_s7_params() -> int:
    """The parameter count of the official ``vip_s7`` (houqb/VisionPermutator), from its layer shapes."""

    def block(c: int) -> int:
        norms = 2 * (2 * c)
        permute_mlp = 3 * c * c + (c * (c // 4) + c // 4) + ((c // 4) * 3 * c + 3 * c) + (c * c + c)
        channel_mlp = (c * 3 * c + 3 * c) + (3 * c * c + c)
        return norms + permute_mlp + channel_mlp

    patch_embed = 3 * 7 * 7 * 192 + 192
    downsample = 192 * 384 * 2 * 2 + 384
    return patch_embed + 4 * block(192) + downsample + (3 + 8 + 3) * block(384) + 2 * 384 + 384 * 1000 + 1000


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return vip_s7(num_classes=10, img_size=SMALL).eval()


@pytest.fixture(scope="module")
def x_small():
    return torch.randn(2, 3, SMALL, SMALL, generator=torch.Generator().manual_seed(1))


def test_registered():
    assert "vip_s7" in list_backbones("mlp")
    assert BACKBONES.get("vip_small_7").name == "vip_s7"
    assert isinstance(create_backbone("vip_s7", num_classes=3, img_size=SMALL), VisionPermutator)


def test_param_count_matches_official_config_and_paper():
    ours = on_meta(vip_s7)
    assert count_params(ours) == official_vip_s7_params() == 25_114_984
    check_param_count(ours, BACKBONES.get("vip_s7").info["params"])
    assert round(count_params(ours) / 1e6) == 25  # the paper's "25M"
    # the segment counts follow the grid, the weights do not: the same count at another img_size
    assert count_params(on_meta(vip_s7, img_size=SMALL)) == 25_114_984


def test_segments_follow_the_grid():
    full = on_meta(vip_s7)
    assert [full.network[i][0].attn.segment_dim for i in (0, 2)] == [32, 16]
    assert [full.network[i][0].attn.segment_size for i in (0, 2)] == [6, 24]


def test_permute_mlp_height_branch_is_a_linear_over_height_and_segment():
    """Restate the height branch: out[h, w, g, s] = sum_{h', s'} W[(h s), (h' s')] x[h', w, g, s']."""
    torch.manual_seed(0)
    mixer = WeightedPermuteMLP(dim=12, segment_dim=3)
    x = torch.randn(2, 3, 3, 12)
    weight = mixer.mlp_h.weight.reshape(3, 4, 3, 4)  # (h, s, h', s'): the Linear's in/out are (H S)
    segments = x.reshape(2, 3, 3, 3, 4)  # (b, h', w, g, s')
    expected = torch.einsum("hsuv,buwgv->bhwgs", weight, segments).reshape(2, 3, 3, 12)
    captured = {}
    handle = mixer.mlp_h.register_forward_hook(lambda m, args, out: captured.setdefault("out", out))
    mixer(x)
    handle.remove()
    # the hook sees (b, g, w, (h s)); bring it back to (b, h, w, (g s))
    actual = captured["out"].reshape(2, 3, 3, 3, 4).permute(0, 3, 2, 1, 4).reshape(2, 3, 3, 12)
    assert_rel_close(actual, expected, what="height branch")


def test_split_attention_weights_sum_to_one():
    """Equal branches come back unchanged: the three softmax weights of every channel sum to 1."""
    x = torch.randn(2, 4, 4, 8)
    assert_rel_close(reweight_branches(x, x, x, Mlp(8, 2, 24)), x, what="a_h x + a_w x + a_c x")


def test_forward_backward(x_small):
    torch.manual_seed(0)
    check_forward_backward(vip_s7(num_classes=4, img_size=SMALL, drop_path_rate=0.1), x_small, 4)


def test_num_classes_and_in_chans():
    check_head_variants(partial(vip_s7, img_size=SMALL), torch.zeros(2, 3, SMALL, SMALL), 384, feature_hw=(4, 4))
    assert on_meta(vip_s7).default_input_size == 224


def test_fx_trace_equals_eager(model, x_small):
    check_fx_matches_eager(model, x_small)


def test_fixed_input_size_raises_clearly(model):
    check_fixed_input_size(model, built_for=SMALL, other=112)
    with pytest.raises(ValueError, match="defined for 224x224 inputs only"):
        on_meta(vip_s7)(torch.zeros(1, 3, 256, 256, device="meta"))


def test_deterministic_init():
    check_deterministic_init(VisionPermutator, layers=(1, 1), embed_dims=(16, 32), transitions=(True, False),
                             mlp_ratios=(3, 3), img_size=56)


def test_init_as_official():
    torch.manual_seed(0)
    weight = vip_s7().network[2][0].attn.mlp_h.weight.detach()
    assert abs(weight.std().item() - 0.02) < 0.002 and weight.abs().max() <= 2.0


def test_inject_eca_after_every_block(model, x_small):
    check_injection(model, "PermutatorBlock", x_small[:1], expected_sites=18)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(img_size=50), "img_size must be a multiple of patch_size=7"),
        (dict(img_size=63), "odd 9 x 9 grid"),
        (dict(img_size=70), "grid side to divide the channels"),
        (dict(layers=(1, 1)), "one entry per stage"),
        (dict(embed_dims=(192, 0, 384, 384)), "embed_dims must be an integer >= 1, got 0"),
        (dict(drop_path_rate=1.0), "drop_path_rate must be a number in"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        on_meta(vip_s7, **kwargs)
    with pytest.raises(ValueError, match="segment_dim must divide dim=10"):
        WeightedPermuteMLP(10, 3)
