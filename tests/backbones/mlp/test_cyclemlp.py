"""CycleMLP-B1 (plugattn/backbones/mlp/cyclemlp.py)."""
import pytest
import torch
from torchvision.ops import deform_conv2d

from ..builders import model_fixture
from ..contract import ContractCase, contract_tests
from plugattn.backbones.mlp.cyclemlp import CycleFC, CycleMLP, cycle_offsets, cyclemlp_b1
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


CASE = ContractCase(
    cyclemlp_b1, "cyclemlp_b1", "mlp", num_features=512, created_as="cyclemlp_b1", model_class=CycleMLP,
    params=15_155_400,  # the official CycleMLP_B1 (official_cyclemlp_b1_params); registry: the README's 15M
    train_kwargs=dict(drop_path_rate=0.1), fx_sizes=((96, 80),), map_features=True, feature_hw=(2, 2),
    init_factory=CycleMLP,
    init_kwargs=dict(layers=(1, 1), embed_dims=(8, 16), transitions=(True, True), mlp_ratios=(4, 4)),
    inject_sites=(("CycleBlock", 10), ("PatchEmbed", 4)),  # PatchEmbed: the stem and 3 downsamplings
)
model = model_fixture(CASE)
test_contract = contract_tests(CASE)


def test_param_count_of_the_official_config():
    assert official_cyclemlp_b1_params() == 15_155_400


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


def test_features_at_96_by_80(model):
    with torch.no_grad():
        assert model.forward_features(torch.randn(1, 3, 96, 80)).shape == (1, 512, 3, 3)


def test_init_as_official():
    torch.manual_seed(0)
    layer = cyclemlp_b1().network[4][0].attn.sfc_h
    assert abs(layer.weight.detach().std().item() - 0.02) < 0.002
    assert float(layer.bias.detach().abs().max()) == 0.0


def test_official_offsets_are_kept_as_a_buffer(model):
    keys = model.state_dict()
    assert keys["network.0.0.attn.sfc_h.offset"].shape == (1, 128, 1, 1)
    assert keys["network.0.0.attn.sfc_h.weight"].shape == (64, 64, 1, 1)


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"kernel_size must be \(1, S\) or \(S, 1\), got \(3, 3\)"):
        CycleFC(4, 4, (3, 3))
    with pytest.raises(ValueError, match="in_channels must be an integer >= 1, got 0"):
        CycleFC(0, 4, (1, 3))
    with pytest.raises(ValueError, match="one entry per stage"):
        CycleMLP(layers=(1, 1), embed_dims=(8,), transitions=(True,), mlp_ratios=(4,))
