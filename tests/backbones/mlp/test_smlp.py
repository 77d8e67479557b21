"""sMLPNet-T (plugattn/backbones/mlp/smlp.py)."""
import pytest
import torch

from ..builders import model_fixture, on_meta
from ..contract import ContractCase, contract_tests
from plugattn.backbones.registry import BACKBONES
from plugattn.backbones.mlp.smlp import SMLPBlock, SMLPNet, SparseMLP, smlpnet_tiny
from plugattn.parameters import count_parameters
from plugattn.testing import assert_rel_close

SMALL = 64  # grids 16, 8, 4, 2


def official_smlpnet_tiny_params() -> int:
    """The parameter count of the official ``smlpnet_tiny`` (microsoft/SPACH), from its layer shapes."""

    def block(c: int, n: int) -> int:
        dwconv = 2 * c + 3 * 3 * c  # BN, depth-wise 3x3 without bias
        sparse_mlp = 2 * c + 2 * (n * n + n) + 3 * c * c  # BN, proj_h and proh_w (1x1 convs N -> N), fuse
        channel_mlp = 2 * c + (c * 3 * c + 3 * c) + (3 * c * c + c)  # LayerNorm, FeedForward alpha = 3
        return dwconv + sparse_mlp + channel_mlp

    widths, grids, depths = (80, 160, 320, 640), (56, 28, 14, 7), (2, 8, 14, 2)
    embeddings = 3 * 4 * 4 * 80 + sum(widths[i] * widths[i + 1] * 2 * 2 for i in range(3))  # no biases
    blocks = sum(d * block(c, n) for d, c, n in zip(depths, widths, grids))
    return embeddings + blocks + 2 * 640 + 640 * 1000 + 1000


CASE = ContractCase(
    smlpnet_tiny, "smlpnet_tiny", "mlp", num_features=640, created_as="smlpnet_tiny", model_class=SMLPNet,
    params=24_123_584,  # the official smlpnet_tiny (official_smlpnet_tiny_params), the paper's "24M"
    size=SMALL, build_kwargs=dict(img_size=SMALL), train_kwargs=dict(drop_path_rate=0.1),
    map_features=True, feature_hw=(2, 2), fixed_size_other=96,
    init_factory=SMLPNet, init_kwargs=dict(layers=(1, 1), dim=8, img_size=16),
    inject_sites=(("SMLPBlock", 26),),
)
model = model_fixture(CASE)
test_contract = contract_tests(CASE)


def test_alias():
    assert BACKBONES.get("smlpnet_t").name == "smlpnet_tiny"


def test_param_count_of_the_official_config_and_paper():
    assert official_smlpnet_tiny_params() == 24_123_584
    assert round(count_parameters(on_meta(smlpnet_tiny)) / 1e6) == 24  # the paper's "24M"


def test_sparse_mlp_matches_the_official_conv_formulation():
    """The official code mixes along W with a 1x1 Conv2d(N, N) on x.permute(0, 3, 1, 2) and along H on
    x.permute(0, 2, 1, 3); restate that with the same weights and compare."""
    torch.manual_seed(0)
    layer = SparseMLP(6, grid=5).eval()
    x = torch.randn(2, 6, 5, 5)
    with torch.no_grad():
        activated = layer.act(layer.norm(x))
        conv_w = torch.nn.functional.conv2d(activated.permute(0, 3, 1, 2), layer.proj_w.weight[:, :, None, None],
                                            layer.proj_w.bias).permute(0, 2, 3, 1)
        conv_h = torch.nn.functional.conv2d(activated.permute(0, 2, 1, 3), layer.proj_h.weight[:, :, None, None],
                                            layer.proj_h.bias).permute(0, 2, 1, 3)
        expected = layer.fuse(torch.cat([activated, conv_w, conv_h], dim=1))
        assert_rel_close(layer(x), expected, what="sMLP vs the official conv form")


def test_sparse_mlp_mixes_only_along_rows_and_columns():
    """A change at one position reaches its row and column only (DWConv excluded): the sparse connectivity."""
    torch.manual_seed(0)
    layer = SparseMLP(4, grid=6).eval()
    x = torch.randn(1, 4, 6, 6)
    changed = x.clone()
    changed[0, :, 2, 3] += 1.0
    with torch.no_grad():
        moved = (layer(changed) - layer(x)).abs().sum(dim=1)[0] > 1e-6
    expected = torch.zeros(6, 6, dtype=torch.bool)
    expected[2, :] = True
    expected[:, 3] = True
    assert torch.equal(moved, expected)


def test_stochastic_depth_grows_linearly():
    blocks = [m for m in on_meta(smlpnet_tiny, drop_path_rate=0.2).modules() if isinstance(m, SMLPBlock)]
    assert len(blocks) == 26
    assert blocks[0].drop_path.drop_prob == 0.0 and blocks[-1].drop_path.drop_prob == pytest.approx(0.2)
    assert blocks[13].drop_path.drop_prob == pytest.approx(0.2 * 13 / 25)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(img_size=100), "img_size must be a multiple of 32"),
        (dict(layers=()), "layers must list at least one stage depth"),
        (dict(dim=0), "dim must be an integer >= 1, got 0"),
        (dict(mlp_ratio=0.0), "mlp_ratio must be > 0"),
        (dict(drop_path_rate=-0.1), "drop_path_rate must be a number in"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        on_meta(smlpnet_tiny, **kwargs)
