"""GFNet-Ti and GFNet-XS (plugattn/backbones/mlp/gfnet.py)."""
import pytest
import torch
import torch.nn.functional as F

from ..builders import model_fixture, on_meta
from ..contract import ContractCase, check_param_count, contract_tests
from plugattn.backbones import list_backbones
from plugattn.backbones.mlp.gfnet import GFNet, GFNetBlock, GlobalFilter, gfnet_ti, gfnet_xs
from plugattn.backbones.registry import BACKBONES
from plugattn.parameters import count_parameters
from plugattn.testing import assert_rel_close

FACTORIES = {"gfnet_ti": (gfnet_ti, 256), "gfnet_xs": (gfnet_xs, 384)}


def official_param_count(dim: int, depth: int = 12, patches: int = 196, classes: int = 1000) -> int:
    """Parameters of the official GFNet (raoyongming/GFNet gfnet.py, main_gfnet.py), module by module."""
    patch_embed = 3 * 16 * 16 * dim + dim
    pos_embed = patches * dim
    filter_weight = 14 * (14 // 2 + 1) * dim * 2  # complex_weight (h, w // 2 + 1, dim, 2)
    mlp = dim * 4 * dim + 4 * dim + 4 * dim * dim + dim
    block = 2 * (2 * dim) + filter_weight + mlp  # norm1, norm2, filter, mlp
    return patch_embed + pos_embed + depth * block + 2 * dim + dim * classes + classes


def tiny(**kwargs):
    config = dict(img_size=32, patch_size=8, embed_dim=16, depth=2)
    return GFNet(**{**config, **kwargs})


# batch 1 at 224: the model is fixed to 224 x 224, one image keeps CI fast
CASE = ContractCase(
    gfnet_ti, "gfnet_ti", "mlp", num_features=256, created_as="gfnet_xs", size=224, batch=1,
    train_kwargs=dict(drop_path_rate=0.1), feature_shape=(1, 196, 256), fixed_size_other=384,
    init_factory=tiny, init_kwargs=dict(num_classes=3),
    inject_sites=(("PatchEmbed", 1),), token_blocks=("GFNetBlock",),
)
model = model_fixture(CASE)
test_contract = contract_tests(CASE)


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_param_count_matches_official_architecture(name):
    assert name in list_backbones("mlp")
    factory, dim = FACTORIES[name]
    count = count_parameters(on_meta(factory))
    assert count == official_param_count(dim) == BACKBONES.get(name).info["params"]
    check_param_count(on_meta(factory), BACKBONES.get(name).info["params"])


def test_global_filter_is_a_circular_convolution():
    # Section 3.3: K * F[x] in frequency is the circular convolution of x with k = F^-1[K] (per channel)
    torch.manual_seed(0)
    height, width, dim = 6, 5, 3
    layer = GlobalFilter(dim, height, width)
    kernel = torch.randn(height, width, dim)
    spectrum = torch.fft.rfft2(kernel, dim=(0, 1))  # unnormalised: rfft2/irfft2 "ortho" factors cancel
    with torch.no_grad():
        layer.complex_weight.copy_(torch.view_as_real(spectrum))
    grid = torch.randn(2, height, width, dim)
    expected = torch.zeros_like(grid)
    for a in range(height):  # y[i, j] = sum_{a, b} k[a, b] x[(i - a) mod H, (j - b) mod W]
        for b in range(width):
            expected += kernel[a, b] * torch.roll(grid, shifts=(a, b), dims=(1, 2))
    with torch.no_grad():
        actual = layer(grid.reshape(2, height * width, dim)).reshape(2, height, width, dim)
    assert_rel_close(actual, expected, what="global filter vs circular convolution")


def test_unit_filter_is_identity():
    layer = GlobalFilter(4, 4, 6)
    with torch.no_grad():
        layer.complex_weight.zero_()
        layer.complex_weight[..., 0] = 1.0  # K = 1 + 0i
        x = torch.randn(2, 24, 4)
        assert_rel_close(layer(x), x, what="unit global filter")


def test_block_has_one_residual_around_filter_and_mlp():
    torch.manual_seed(0)
    block = GFNetBlock(8, 3, 4).eval()
    x = torch.randn(2, 12, 8)
    with torch.no_grad():
        filtered = block.filter(F.layer_norm(x, (8,), block.norm1.weight, block.norm1.bias, 1e-6))
        expected = x + block.mlp(F.layer_norm(filtered, (8,), block.norm2.weight, block.norm2.bias, 1e-6))
        assert_rel_close(block(x), expected, what="GFNet block")


def test_filter_shape_and_init():
    torch.manual_seed(0)
    weight = gfnet_ti().blocks[0].filter.complex_weight.detach()
    assert weight.shape == (14, 8, 256, 2)  # 14 x 14 grid, 14 // 2 + 1 frequency columns
    assert abs(weight.std().item() - 0.02) < 0.001


def test_img_size_builds_other_sizes():
    assert tiny()(torch.zeros(1, 3, 32, 32)).shape == (1, 1000)


def test_fx_graph_keeps_the_fft(model):
    traced = torch.fx.symbolic_trace(model)
    assert any(node.target is torch.fft.rfft2 for node in traced.graph.nodes)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(img_size=36), "patch_size must divide img_size=36"),
        (dict(mlp_ratio=0), "mlp_ratio must be > 0, got 0"),
        (dict(drop_path_rate=1.0), r"drop_path_rate must be a number in \[0, 1\), got 1.0"),
        (dict(depth=0), "depth must be an integer >= 1, got 0"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tiny(**kwargs)
