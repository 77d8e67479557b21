"""Vision Permutator ViP-Small/7 (plugattn/backbones/mlp/vip.py)."""
import pytest
import torch

from ..builders import model_fixture, on_meta
from ..contract import ContractCase, contract_tests
from plugattn.backbones.registry import BACKBONES
from plugattn.backbones.mlp.vip import (
    VisionPermutator,
    WeightedPermuteMLP,
    vip_s7,
)
from plugattn.backbones.layers import Mlp, reweight_branches
from plugattn.parameters import count_parameters
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


CASE = ContractCase(
    vip_s7, "vip_s7", "mlp", num_features=384, created_as="vip_s7", model_class=VisionPermutator,
    params=25_114_984,  # the official vip_s7 (official_vip_s7_params), the paper's "25M"
    size=SMALL, build_kwargs=dict(img_size=SMALL), train_kwargs=dict(drop_path_rate=0.1),
    map_features=True, feature_hw=(4, 4), fixed_size_other=112,
    init_factory=VisionPermutator, init_kwargs=dict(layers=(1, 1), embed_dims=(16, 32), transitions=(True, False),
                                                    mlp_ratios=(3, 3), img_size=56),
    inject_sites=(("PermutatorBlock", 18),),
)
model = model_fixture(CASE)
test_contract = contract_tests(CASE)


def test_alias():
    assert BACKBONES.get("vip_small_7").name == "vip_s7"


def test_param_count_of_the_official_config_and_paper():
    assert official_vip_s7_params() == 25_114_984
    assert round(count_parameters(on_meta(vip_s7)) / 1e6) == 25  # the paper's "25M"
    # the segment counts follow the grid, the weights do not: the same count at another img_size
    assert count_parameters(on_meta(vip_s7, img_size=SMALL)) == 25_114_984


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


def test_default_size_is_fixed_too():
    with pytest.raises(ValueError, match="defined for 224x224 inputs only"):
        on_meta(vip_s7)(torch.zeros(1, 3, 256, 256, device="meta"))


def test_init_as_official():
    torch.manual_seed(0)
    weight = vip_s7().network[2][0].attn.mlp_h.weight.detach()
    assert abs(weight.std().item() - 0.02) < 0.002 and weight.abs().max() <= 2.0


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
