"""PVT-Tiny v1 (plugattn/backbones/vit/pvt.py)."""
import pytest
import torch

from ..builders import model_fixture, x64
from ..contract import ContractCase, contract_tests
from plugattn.backbones.vit.pvt import PyramidVisionTransformer, SpatialReductionAttention, pvt_tiny
from plugattn.testing import assert_rel_close

CASE = ContractCase(
    pvt_tiny, "pvt_tiny", "vit", num_features=512, created_as="pvt_v1_tiny",
    params=13_229_288,  # Table 1: 13.2M (the registry's reference)
    fx_sizes=(224,), init_factory=PyramidVisionTransformer,
    init_kwargs=dict(img_size=64, dims=(8, 16, 24, 32), heads=(1, 2, 3, 4), depths=(1, 1, 1, 1)),
    inject_sites=(("PatchEmbed", 4),), token_blocks=("PVTBlock",),
)
model = model_fixture(CASE)
test_contract = contract_tests(CASE)


def test_stage_shapes(model):
    with torch.no_grad():
        x = torch.randn(1, 3, 224, 224)
        shapes = []
        for stage in model.stages:
            x, cls_token = stage(x)
            shapes.append(tuple(x.shape))
    assert shapes == [(1, 64, 56, 56), (1, 128, 28, 28), (1, 320, 14, 14), (1, 512, 7, 7)]
    assert cls_token.shape == (1, 1, 512)


def test_spatial_reduction_attention_matches_eq3():
    # Eq. (2)-(3): K, V from LN(Conv_R(x)) with R = 2; every token queries
    torch.manual_seed(0)
    sra = SpatialReductionAttention(16, 2, sr_ratio=2).eval()
    x = torch.randn(2, 16, 16)
    with torch.no_grad():
        reduced = sra.norm(sra.sr(x.transpose(1, 2).reshape(2, 16, 4, 4)).flatten(2).transpose(1, 2))
        q = sra.q(x).reshape(2, 16, 2, 8).transpose(1, 2)
        k, v = sra.kv(reduced).reshape(2, 4, 2, 2, 8).permute(2, 0, 3, 1, 4)
        weights = (q @ k.transpose(-2, -1) / 8 ** 0.5).softmax(-1)
        expected = sra.proj((weights @ v).transpose(1, 2).reshape(2, 16, 16))
        assert_rel_close(sra(x, 4, 4), expected, what="SRA vs Eq. (3)")


def test_features_are_the_last_stage_map(model, x64):
    with torch.no_grad():
        assert model.forward_features(x64).shape == (2, 512, 2, 2)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(img_size=200), "img_size must be a multiple of 32"),
        (dict(depths=(2, 2, 2)), "4 entries"),
        (dict(heads=(1, 2, 5, 7)), "num_heads must divide dim=512"),
        (dict(sr_ratios=(8, 4, 0, 1)), "sr_ratio must be an integer >= 1"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PyramidVisionTransformer(**kwargs)
