"""MobileViT-S (Mehta & Rastegari, ICLR 2022) against timm's mobilevit_s."""
import pytest
import timm
import torch

from hybrid_checks import assert_heads, assert_registered, assert_token_site_refused
from mobile_checks import (
    assert_bad_load_raises,
    assert_deterministic_init,
    assert_forward_backward,
    assert_fx_matches,
    assert_inject_runs,
    assert_loads_reference,
    assert_param_count,
)
from plugattn.backbones.mobilevit import MobileViT, fold_patches, mobilevit_s, unfold_patches

# timm.create_model("mobilevit_s", pretrained=False): 5,578,632 parameters (measured)
TIMM_PARAMS = 5_578_632


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return mobilevit_s(num_classes=10)


def test_param_count_matches_timm():
    assert_param_count(mobilevit_s(), TIMM_PARAMS)
    assert_registered("mobilevit_s", MobileViT, TIMM_PARAMS)


def test_forward_backward(model):
    assert_forward_backward(model, 10, size=64)


def test_heads_features_and_default_size():
    assert_heads(mobilevit_s, 640, (640, 2, 2), size=64, default_input_size=256)


def test_fx_trace_equals_eager_at_128(model):
    # 128 is a size other than the default 256 that the 2x2 patching allows
    assert_fx_matches(model, size=128)


def test_init_is_deterministic():
    assert_deterministic_init(mobilevit_s)


def test_size_not_divisible_by_the_patching_is_refused(model):
    # 96 -> the last MobileViT block sees 3x3, not divisible by the 2x2 patch
    with pytest.raises(ValueError, match="3x3 is not divisible by the 2x2 patch"):
        model.eval()(torch.randn(1, 3, 96, 96))


def test_unfold_fold_round_trip_and_layout():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    tokens = unfold_patches(x, 2, 2)
    assert tokens.shape == (2 * 4, 4, 3)
    # token sequence 0 of image 0 holds the top-left pixel of every 2x2 patch, patches in raster order
    assert torch.equal(tokens[0, :, 0], x[0, 0, ::2, ::2].reshape(-1))
    assert torch.equal(fold_patches(tokens, 2, 4, 4, 2, 2), x)


def test_inject_eca_after_every_mv2_block(model):
    # stages: 1 + 3 + 1 + 1 + 1 = 7 MV2 blocks
    assert_inject_runs(model, "MV2Block", expected_sites=7, size=64)


def test_inject_into_transformer_tokens_is_refused(model):
    assert_token_site_refused(model, "TransformerLayer", size=64)


def test_timm_weights_give_timm_outputs():
    torch.manual_seed(0)
    assert_loads_reference(mobilevit_s(), timm.create_model("mobilevit_s", pretrained=False), "timm", size=64)


def test_mismatched_weights_are_refused():
    state = timm.create_model("mobilevit_s", pretrained=False).state_dict()
    assert_bad_load_raises(mobilevit_s(), state, "timm")


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_classes"):
        mobilevit_s(num_classes=-1)
    with pytest.raises(ValueError, match="dropout"):
        mobilevit_s(dropout=1.0)
