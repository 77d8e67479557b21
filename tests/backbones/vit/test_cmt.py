"""CMT-Ti (plugattn/backbones/vit/cmt.py)."""
from functools import partial

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from ..builders import on_meta
from ..contract import (
    check_deterministic_init, check_forward_backward, check_fx_matches_eager, check_head_variants,
    check_injection, check_param_count, check_token_site_error,
)
from plugattn.backbones import create_backbone, list_backbones
from plugattn.backbones.vit.cmt import CMT, CMTBlock, LightweightAttention, cmt_ti, resize_relative_position_bias
from plugattn.backbones.registry import BACKBONES
from plugattn.parameters import count_parameters
from plugattn.testing import assert_rel_close

SMALL = dict(img_size=64, dims=(8, 16, 24, 32), depths=(1, 1, 1, 1), heads=(1, 2, 2, 4), fc_dim=40)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return cmt_ti(num_classes=10).eval()


@pytest.fixture(scope="module")
def x96():
    return torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(1))


def cmt_ti_param_formula(img_size: int = 160, num_classes: int = 1000) -> int:
    """CMT-Ti's parameters layer by layer (Table 1 sizes, official layer shapes; every conv has a bias)."""
    def conv(c_in, c_out, k, groups=1):
        return c_in // groups * c_out * k * k + c_out

    stem = conv(3, 16, 3) + 2 * conv(16, 16, 3) + 3 * 2 * 16  # three conv + BN
    total, c_in, grid = stem, 16, img_size // 2
    for dim, depth, heads, sr in zip((46, 92, 184, 368), (2, 2, 10, 2), (1, 2, 4, 8), (8, 4, 2, 1)):
        grid //= 2
        hidden = int(dim * 3.6)
        total += conv(c_in, dim, 2) + 2 * dim  # patch embedding + LayerNorm
        total += heads * grid ** 2 * (grid // sr) ** 2  # relative position bias B, one per stage
        block = conv(dim, dim, 3, groups=dim)  # LPU
        block += 2 * 2 * dim  # two LayerNorms
        block += 4 * (dim * dim + dim)  # q, k, v, proj
        block += (conv(dim, dim, sr, groups=dim) + 2 * dim) if sr > 1 else 0  # reduction conv + BN
        block += conv(dim, hidden, 1) + 2 * hidden  # IRFFN expand + BN
        block += conv(hidden, hidden, 3, groups=hidden) + 2 * hidden  # IRFFN DWConv + BN
        block += conv(hidden, dim, 1) + 2 * dim  # IRFFN project + BN
        total += depth * block
        c_in = dim
    total += conv(368, 1280, 1) + 2 * 1280  # 1x1 projection + BN
    return total + 1280 * num_classes + num_classes


def test_registered():
    assert "cmt_ti" in list_backbones("vit")
    built = create_backbone("cmt_tiny", num_classes=3)
    assert built.head.out_features == 3 and built.default_input_size == 160


def test_param_count_matches_paper_at_160():
    ours = on_meta(cmt_ti)
    assert count_parameters(ours) == cmt_ti_param_formula() == 9_492_426
    check_param_count(ours, BACKBONES.get("cmt_ti").info["params"])  # Table 1: 9.5M
    # the relative position bias tables are sized for the input: 75,000 entries at 160, 288,120 at 224
    assert sum(stage.relative_pos.numel() for stage in ours.stages) == 75_000
    assert count_parameters(on_meta(cmt_ti, img_size=224)) == cmt_ti_param_formula(224) == 9_705_546


def test_flops_match_paper_at_160():
    # Table 1: 0.6G FLOPs (multiply-adds) at 160 x 160; FlopCounterMode counts 2 per multiply-add
    ours = on_meta(cmt_ti).eval()
    with FlopCounterMode(display=False) as counter:
        ours(torch.zeros(1, 3, 160, 160, device="meta"))
    assert 0.6 <= counter.get_total_flops() / 2e9 < 0.65


def test_stage_shapes_at_160(model):
    x = torch.randn(1, 3, 160, 160)
    shapes, biases = [], []
    with torch.no_grad():
        x = model.stem(x)
        assert x.shape == (1, 16, 80, 80)
        for stage in model.stages:
            x = stage(x)
            shapes.append(tuple(x.shape))
            biases.append(tuple(stage.relative_pos.shape))
    assert shapes == [(1, 46, 40, 40), (1, 92, 20, 20), (1, 184, 10, 10), (1, 368, 5, 5)]
    assert biases == [(1, 1600, 25), (2, 400, 25), (4, 100, 25), (8, 25, 25)]  # keys on a 5 x 5 grid


def test_lightweight_attention_matches_eq5():
    # Eq. (5): Softmax(Q K'^T / sqrt(d) + B) V', K', V' from a 2 x 2 depthwise stride-2 conv (+ BN)
    torch.manual_seed(0)
    attn = LightweightAttention(16, 2, sr_ratio=2).eval()
    x, bias = torch.randn(2, 36, 16), torch.randn(2, 36, 9)
    with torch.no_grad():
        reduced = attn.sr(x.transpose(1, 2).reshape(2, 16, 6, 6)).flatten(2).transpose(1, 2)  # (2, 9, 16)
        q = attn.q(x).reshape(2, 36, 2, 8).transpose(1, 2)
        k = attn.k(reduced).reshape(2, 9, 2, 8).transpose(1, 2)
        v = attn.v(reduced).reshape(2, 9, 2, 8).transpose(1, 2)
        weights = (q @ k.transpose(-2, -1) / 8 ** 0.5 + bias).softmax(-1)
        expected = attn.proj((weights @ v).transpose(1, 2).reshape(2, 36, 16))
        assert_rel_close(attn(x, 6, 6, bias), expected, what="LMHSA vs Eq. (5)")


def test_cmt_block_matches_eq7_to_9():
    # Y = DWConv(X) + X; Z = LMHSA(LN(Y)) + Y; out = IRFFN(LN(Z)) + Z, with IRFFN = project(F(expand(.)))
    torch.manual_seed(0)
    block = CMTBlock(16, 2, 3.6, sr_ratio=2).eval()
    x, bias = torch.randn(2, 16, 4, 4), torch.randn(2, 16, 4)
    with torch.no_grad():
        y = block.lpu.dwconv(x) + x
        y_tokens = y.flatten(2).transpose(1, 2)
        z = block.attn(block.norm1(y_tokens), 4, 4, bias) + y_tokens
        ffn = block.ffn
        hidden = ffn.expand(block.norm2(z).transpose(1, 2).reshape(2, 16, 4, 4))
        assert hidden.shape[1] == int(16 * 3.6)
        out = ffn.project(ffn.norm(ffn.act(ffn.dwconv(hidden) + hidden))) + z.transpose(1, 2).reshape(2, 16, 4, 4)
        assert_rel_close(block(x, bias), out, what="CMT block vs Eq. (7)-(9)")


def test_relative_position_bias_resize():
    table = torch.randn(2, 16, 4)
    assert resize_relative_position_bias(table, (4, 4), (2, 2), (4, 4), (2, 2)) is table  # native size: B itself
    assert torch.allclose(resize_relative_position_bias(torch.full((2, 16, 4), 0.5), (4, 4), (2, 2), (6, 6), (3, 3)),
                          torch.full((2, 36, 9), 0.5))
    # a bias that depends on the key position only: every query row is the key map resized bilinearly
    key_map = torch.randn(2, 1, 2, 2)
    by_key = key_map.flatten(1).unsqueeze(1).expand(2, 16, 4)
    resized = resize_relative_position_bias(by_key, (4, 4), (2, 2), (8, 8), (3, 3))
    expected_row = F.interpolate(key_map, size=(3, 3), mode="bilinear", align_corners=False).flatten(1)
    assert resized.shape == (2, 64, 9)
    assert_rel_close(resized, expected_row.unsqueeze(1).expand(2, 64, 9), what="key-grid resize")


def test_forward_backward_at_96(x96):
    torch.manual_seed(0)
    check_forward_backward(cmt_ti(num_classes=4), x96, 4)  # relative_pos included: resized B gets gradients


def test_num_classes_and_in_chans():
    # a narrow CMT through the same factory (meta shapes only; cmt_ti's own head is built in test_registered)
    check_head_variants(partial(cmt_ti, **SMALL), torch.zeros(2, 3, 64, 64), 40, feature_hw=(2, 2))


def test_fx_matches_eager_at_160_and_96(model, x96):
    check_fx_matches_eager(model, torch.randn(1, 3, 160, 160))
    check_fx_matches_eager(model, x96)


def test_deterministic_init():
    check_deterministic_init(CMT, **SMALL)


def test_inject_after_blocks_and_token_error(model):
    x = torch.randn(1, 3, 64, 64)
    check_injection(model, "CMTBlock", x, expected_sites=16)
    check_injection(model, "PatchEmbed", x, expected_sites=4)
    check_token_site_error(model, "LightweightAttention", x)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(img_size=150), "img_size must be a multiple of 32"),
        (dict(depths=(2, 2, 10)), "4 entries"),
        (dict(heads=(1, 2, 4, 7)), "num_heads must divide dim=368"),
        (dict(sr_ratios=(8, 4, 0, 1)), "sr_ratio must be an integer >= 1"),
        (dict(sr_ratios=(16, 4, 2, 1)), "sr_ratio must divide the stage grid 40"),
        (dict(drop_path_rate=1.0), "drop_path_rate must be a number in"),
        (dict(fc_dim=0), "fc_dim must be an integer >= 1"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CMT(**kwargs)
