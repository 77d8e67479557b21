"""PVT-Tiny v1 (plugattn/backbones/pvt.py)."""
import pytest
import torch

from cnn_checks import (
    check_deterministic_init,
    check_forward_backward,
    check_fx_matches_eager,
    check_injection,
    check_param_count,
    count_params,
    on_meta,
)
from vit_checks import check_token_head_variants, check_token_site_error
from plugattn.backbones import create_backbone, list_backbones
from plugattn.backbones.pvt import PyramidVisionTransformer, SpatialReductionAttention, pvt_tiny
from plugattn.backbones.registry import BACKBONES
from plugattn.testing import assert_rel_close


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return pvt_tiny(num_classes=10).eval()


@pytest.fixture(scope="module")
def x64():
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))


def test_registered():
    assert "pvt_tiny" in list_backbones("vit")
    assert create_backbone("pvt_v1_tiny", num_classes=3).head.out_features == 3


def test_param_count_matches_paper():
    ours = on_meta(pvt_tiny)
    assert count_params(ours) == 13_229_288
    check_param_count(ours, BACKBONES.get("pvt_tiny").info["params"])  # Table 1: 13.2M


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


def test_forward_backward_other_size(x64):
    torch.manual_seed(0)
    check_forward_backward(pvt_tiny(num_classes=4), x64, 4)


def test_num_classes_and_in_chans():
    check_token_head_variants(pvt_tiny, torch.zeros(2, 3, 64, 64), 512)


def test_fx_matches_eager_two_sizes(model, x64):
    check_fx_matches_eager(model, torch.randn(1, 3, 224, 224))
    check_fx_matches_eager(model, x64)
    with torch.no_grad():
        assert model.forward_features(x64).shape == (2, 512, 2, 2)


def test_deterministic_init():
    check_deterministic_init(PyramidVisionTransformer, img_size=64, dims=(8, 16, 24, 32), heads=(1, 2, 3, 4),
                             depths=(1, 1, 1, 1))


def test_inject_after_patch_embeds_and_token_error(model, x64):
    check_injection(model, "PatchEmbed", x64[:1], expected_sites=4)
    check_token_site_error(model, "PVTBlock", x64[:1])


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
