"""PiT-Ti (plugattn/backbones/pit.py)."""
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
from vit_checks import (
    check_keys_match_timm,
    check_timm_outputs_match,
    check_token_head_variants,
    check_token_site_error,
    timm_param_count,
)
from plugattn.backbones import create_backbone, list_backbones
from plugattn.backbones.pit import PoolingVisionTransformer, pit_ti_224
from plugattn.backbones.registry import BACKBONES

PIT_TI_PARAMS = 4_847_272  # timm pit_ti_224, re-measured below


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return pit_ti_224(num_classes=10).eval()


@pytest.fixture(scope="module")
def x64():
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))


def test_registered():
    assert "pit_ti_224" in list_backbones("vit")
    assert create_backbone("pit_ti", num_classes=3).head.out_features == 3


def test_param_count_matches_timm():
    ours = on_meta(pit_ti_224)
    assert count_params(ours) == PIT_TI_PARAMS == timm_param_count("pit_ti_224")
    check_param_count(ours, BACKBONES.get("pit_ti_224").info["params"])


def test_keys_match_timm():
    check_keys_match_timm(pit_ti_224, "pit_ti_224")


def test_timm_weights_load_and_match_at_224():
    check_timm_outputs_match(pit_ti_224(), "pit_ti_224", torch.randn(1, 3, 224, 224))


def test_stage_shapes_follow_paper(model):
    # Table 1: 27 x 27 tokens of 64 channels, pooled to 14 x 14 x 128, then 7 x 7 x 256
    with torch.no_grad():
        x = model.patch_embed(torch.randn(1, 3, 224, 224))
        assert x.shape == (1, 64, 27, 27)
        cls_token = model.cls_token.expand(1, -1, -1)
        shapes = []
        for stage in model.transformers:
            x, cls_token = stage(x, cls_token)
            shapes.append((tuple(x.shape), tuple(cls_token.shape)))
    assert shapes == [((1, 64, 27, 27), (1, 1, 64)), ((1, 128, 14, 14), (1, 1, 128)), ((1, 256, 7, 7), (1, 1, 256))]


def test_forward_backward_other_size(x64):
    torch.manual_seed(0)
    check_forward_backward(pit_ti_224(num_classes=4, drop_path_rate=0.1), x64, 4)


def test_num_classes_and_in_chans():
    check_token_head_variants(pit_ti_224, torch.zeros(2, 3, 64, 64), 256)


def test_fx_matches_eager_default_and_other_size(model, x64):
    check_fx_matches_eager(model, torch.randn(1, 3, 224, 224))
    check_fx_matches_eager(model, x64)


def test_deterministic_init():
    check_deterministic_init(PoolingVisionTransformer, img_size=32, base_dims=(8, 8), depth=(1, 1), heads=(2, 4))


def test_inject_after_map_producing_convs(model, x64):
    # patch embedding conv + the two pooling depthwise convs
    check_injection(model, "Conv2d", x64[:1], expected_sites=3)


def test_pooling_site_gives_injector_error(model, x64):
    check_token_site_error(model, "Pooling", x64[:1])


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(depth=(1, 1)), "one entry per stage"),
        (dict(img_size=8), "img_size must be >= patch_size=16"),
        (dict(stride=0), "stride must be an integer >= 1"),
        (dict(drop_path_rate=-0.1), "drop_path_rate"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PoolingVisionTransformer(**kwargs)
