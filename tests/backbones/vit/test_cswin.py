"""CSWin-T (Dong et al., CVPR 2022): official config, stripes, LePE, FX at 112."""
import pytest
import torch

from ..builders import model_fixture
from ..contract import ContractCase, contract_tests
from plugattn.backbones.vit.cswin import CSWinBlock, CSWinTransformer, LePEAttention, cswin_tiny
from plugattn.parameters import count_parameters

# the official CSWin_64_12211_tiny_224 layer shapes give 22,320,552 parameters (paper Table 1: "23M")
OFFICIAL_PARAMS = 22_320_552
SIZE = 112  # smallest input whose stage-3 map (7x7) tiles into width-7 stripes

CASE = ContractCase(
    cswin_tiny, "cswin_tiny", "vit", num_features=512, created_as="cswin_tiny", model_class=CSWinTransformer,
    train_on_fixture=True,
    reference_params=OFFICIAL_PARAMS, size=SIZE, heads_with_weights=True,
    feature_shape=(2, 16, 512),  # 112 -> 28 -> 14 -> 7 -> 4 (3x3 stride-2 convs, padding 1): 16 tokens of 8C
    init_factory=cswin_tiny, init_kwargs=dict(num_classes=10),
    inject_sites=(("CSWinStage", 4), ("MergeBlock", 3)), token_blocks=("CSWinBlock",),
)
model = model_fixture(CASE)
test_contract = contract_tests(CASE)


def test_block_param_count():
    # one block of width C: LN 2C, qkv 3C^2 + 3C, two LePE dwconvs 2 * (C/2 * 9 + C/2), proj C^2 + C,
    # LN 2C, MLP 8C^2 + 5C
    c = 256
    block = CSWinBlock(c, num_heads=8, stripe_width=7)
    assert count_parameters(block) == 2 * c + 3 * c * c + 3 * c + 10 * c + c * c + c + 2 * c + 8 * c * c + 5 * c


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
    # the shared input check says the rule up front; the stage itself still refuses (forward_features)
    with pytest.raises(ValueError, match=r"expects a \(B, 3, H, W\) batch with H, W multiples of 112, got a 64x64"):
        model.eval()(torch.randn(1, 3, 64, 64))
    with pytest.raises(ValueError, match="not divisible by stripes of width 7"):
        model.forward_features(torch.randn(1, 3, 64, 64))


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_classes"):
        cswin_tiny(num_classes=-1)
    with pytest.raises(ValueError, match="stripe_widths"):
        cswin_tiny(stripe_widths=(1, 2))
    with pytest.raises(ValueError, match="num_heads"):
        CSWinBlock(30, num_heads=4, stripe_width=2)
