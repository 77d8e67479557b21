"""CSWin-T (Dong et al., CVPR 2022): official config, stripes, LePE, FX at 112."""
import pytest
import torch

from .backbone_checks import (
    check_deterministic_init, check_forward_backward, check_fx_matches_eager, check_heads, check_injection,
    check_param_count, check_registered, check_token_site_error, random_batch,
)
from plugattn.backbones.cswin import CSWinBlock, CSWinTransformer, LePEAttention, cswin_tiny

# the official CSWin_64_12211_tiny_224 layer shapes give 22,320,552 parameters (paper Table 1: "23M")
OFFICIAL_PARAMS = 22_320_552
SIZE = 112  # smallest input whose stage-3 map (7x7) tiles into width-7 stripes


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return cswin_tiny(num_classes=10)


def test_param_count_matches_the_official_config():
    check_param_count(cswin_tiny(), OFFICIAL_PARAMS)
    check_registered("cswin_tiny", "vit", model_class=CSWinTransformer, params=OFFICIAL_PARAMS)
    # one block of width C: LN 2C, qkv 3C^2 + 3C, two LePE dwconvs 2 * (C/2 * 9 + C/2), proj C^2 + C,
    # LN 2C, MLP 8C^2 + 5C
    c = 256
    block = CSWinBlock(c, num_heads=8, stripe_width=7)
    assert sum(p.numel() for p in block.parameters()) == 2 * c + 3 * c * c + 3 * c + 10 * c + c * c + c + 2 * c + 8 * c * c + 5 * c


def test_forward_backward(model):
    check_forward_backward(model, random_batch(SIZE), 10)


def test_heads_features_and_default_size():
    # 112 -> 28 -> 14 -> 7 -> 4 (3x3 stride-2 convs, padding 1): 16 tokens of width 8C = 512
    check_heads(cswin_tiny, 512, (16, 512), size=SIZE, default_input_size=224)


def test_fx_trace_equals_eager(model):
    check_fx_matches_eager(model, random_batch(SIZE, batch=1))


def test_init_is_deterministic():
    check_deterministic_init(cswin_tiny, num_classes=10)


def test_stripe_attention_matches_a_direct_statement():
    # Eq. (1)-(3) for vertical stripes of width 2 on a 4x4 map: every column pair attends within itself
    torch.manual_seed(0)
    attn = LePEAttention(4, num_heads=1, orientation="vertical", stripe_width=2).eval()
    q, k, v = torch.randn(3, 1, 16, 4).unbind(0)
    out = attn(q, k, v, 4, 4)
    grid = lambda t: t.reshape(1, 4, 4, 4)  # (B, H, W, C)
    for col in (0, 2):
        qs, ks, vs = (grid(t)[:, :, col:col + 2].reshape(1, 8, 4) for t in (q, k, v))
        weights = torch.softmax(qs @ ks.transpose(1, 2) / 2.0, dim=-1)  # sqrt(d) = 2
        v_img = vs.reshape(1, 4, 2, 4).permute(0, 3, 1, 2)  # the stripe as a (1, C, 4, 2) image
        lepe = attn.get_v(v_img).permute(0, 2, 3, 1).reshape(1, 8, 4)
        expected = weights @ vs + lepe
        torch.testing.assert_close(grid(out)[:, :, col:col + 2].reshape(1, 8, 4), expected, rtol=1e-5, atol=1e-5)


def test_size_that_does_not_tile_into_stripes_is_refused(model):
    with pytest.raises(ValueError, match="not divisible by stripes of width 7"):
        model.eval()(torch.randn(1, 3, 64, 64))


def test_inject_eca_after_every_stage_and_merge(model):
    check_injection(model, "CSWinStage", random_batch(SIZE, batch=1), expected_sites=4)
    check_injection(model, "MergeBlock", random_batch(SIZE, batch=1), expected_sites=3)


def test_inject_into_block_tokens_is_refused(model):
    check_token_site_error(model, "CSWinBlock", random_batch(SIZE, batch=1))


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_classes"):
        cswin_tiny(num_classes=-1)
    with pytest.raises(ValueError, match="stripe_widths"):
        cswin_tiny(stripe_widths=(1, 2))
    with pytest.raises(ValueError, match="num_heads"):
        CSWinBlock(30, num_heads=4, stripe_width=2)
