"""CvT-13 (plugattn/backbones/cvt.py)."""
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
from plugattn.backbones.cvt import ConvAttention, CvT, cvt_13
from plugattn.backbones.registry import BACKBONES
from plugattn.testing import assert_rel_close


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return cvt_13(num_classes=10).eval()


@pytest.fixture(scope="module")
def x64():
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))


def test_registered():
    assert "cvt_13" in list_backbones("vit")
    assert create_backbone("cvt_13", num_classes=3).head.out_features == 3


def test_param_count_matches_paper():
    ours = on_meta(cvt_13)
    assert count_params(ours) == 19_997_480
    check_param_count(ours, BACKBONES.get("cvt_13").info["params"])  # paper / HF: 20.0M


def test_stage_shapes_and_class_token_only_in_last_stage(model):
    with torch.no_grad():
        x = torch.randn(1, 3, 224, 224)
        shapes = []
        for stage in model.stages:
            x, cls_token = stage(x)
            shapes.append((tuple(x.shape), None if cls_token is None else tuple(cls_token.shape)))
    assert shapes == [((1, 64, 56, 56), None), ((1, 192, 28, 28), None), ((1, 384, 14, 14), (1, 1, 384))]


def test_conv_attention_matches_restated_projection():
    # Section 3.2: Q from a stride-1, K/V from stride-2 depthwise conv + BN; class token skips the convs
    torch.manual_seed(0)
    attn = ConvAttention(16, num_heads=2).eval()
    x = torch.randn(2, 1 + 36, 16)
    with torch.no_grad():
        x_map = x[:, 1:].transpose(1, 2).reshape(2, 16, 6, 6)

        def project(conv_proj, linear):
            tokens = conv_proj(x_map).flatten(2).transpose(1, 2)
            return linear(torch.cat([x[:, :1], tokens], 1)).reshape(2, -1, 2, 8).transpose(1, 2)

        q, k, v = project(attn.conv_proj_q, attn.proj_q), project(attn.conv_proj_k, attn.proj_k), \
            project(attn.conv_proj_v, attn.proj_v)
        assert q.shape[2] == 37 and k.shape[2] == 1 + 9  # K, V squeezed to 3 x 3
        weights = (q @ k.transpose(-2, -1) * 16 ** -0.5).softmax(-1)
        expected = attn.proj((weights @ v).transpose(1, 2).reshape(2, 37, 16))
        assert_rel_close(attn(x, 6, 6, with_cls_token=True), expected, what="convolutional attention")


def test_forward_backward(x64):
    torch.manual_seed(0)
    check_forward_backward(cvt_13(num_classes=4), x64, 4)


def test_num_classes_and_in_chans(x64):
    check_token_head_variants(cvt_13, torch.zeros(2, 3, 64, 64), 384)
    with torch.no_grad():
        assert on_meta(cvt_13).forward_features(x64.to("meta")).shape == (2, 384, 4, 4)


def test_fx_matches_eager_two_sizes(model, x64):
    check_fx_matches_eager(model, torch.randn(1, 3, 224, 224))
    check_fx_matches_eager(model, x64)


def test_deterministic_init():
    check_deterministic_init(CvT, dims=(8, 16, 32), depths=(1, 1, 1), heads=(1, 2, 4))


def test_inject_after_conv_projections_and_token_error(model, x64):
    check_injection(model, "ConvProjection", x64[:1], expected_sites=3 * 13)
    check_token_site_error(model, "CvTBlock", x64[:1])


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(heads=(1, 3, 5)), "num_heads must divide dim=384"),
        (dict(depths=(1, 2)), "3 entries"),
        (dict(drop_path_rate=2.0), "drop_path_rate"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CvT(**kwargs)
