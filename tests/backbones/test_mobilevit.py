"""MobileViT-S (Mehta & Rastegari, ICLR 2022) against timm's mobilevit_s."""
import pytest
import timm
import torch

from .backbone_checks import (
    check_bad_load_raises, check_deterministic_init, check_forward_backward, check_fx_matches_eager, check_heads,
    check_injection, check_load_matches, check_param_count, check_registered, check_token_site_error, random_batch,
)
from plugattn.backbones.mobilevit import MobileViT, fold_patches, mobilevit_s, unfold_patches

# timm.create_model("mobilevit_s", pretrained=False): 5,578,632 parameters (measured)
TIMM_PARAMS = 5_578_632


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return mobilevit_s(num_classes=10)


def test_param_count_matches_timm():
    check_param_count(mobilevit_s(), TIMM_PARAMS)
    check_registered("mobilevit_s", "vit", model_class=MobileViT, params=TIMM_PARAMS)


def test_forward_backward(model):
    check_forward_backward(model, random_batch(64), 10)


def test_heads_features_and_default_size():
    check_heads(mobilevit_s, 640, (640, 2, 2), size=64, default_input_size=256)


def test_fx_trace_equals_eager_at_128(model):
    # 128 is a size other than the default 256 that the 2x2 patching allows
    check_fx_matches_eager(model, random_batch(128, batch=1))


def test_init_is_deterministic():
    check_deterministic_init(mobilevit_s, num_classes=10)


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
    check_injection(model, "MV2Block", random_batch(64, batch=1), expected_sites=7)


def test_inject_into_transformer_tokens_is_refused(model):
    check_token_site_error(model, "TransformerLayer", random_batch(64, batch=1))


def test_timm_weights_give_timm_outputs():
    torch.manual_seed(0)
    check_load_matches(mobilevit_s(), timm.create_model("mobilevit_s", pretrained=False), "timm", random_batch(64, batch=1))


def test_mismatched_weights_are_refused():
    state = timm.create_model("mobilevit_s", pretrained=False).state_dict()
    check_bad_load_raises(mobilevit_s(), state, "timm")


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_classes"):
        mobilevit_s(num_classes=-1)
    with pytest.raises(ValueError, match="dropout"):
        mobilevit_s(dropout=1.0)
