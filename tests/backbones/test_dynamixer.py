"""DynaMixer-S (plugattn/backbones/dynamixer.py)."""
from functools import partial

import pytest
import torch

from .backbone_checks import (
    check_deterministic_init, check_fixed_input_size, check_forward_backward, check_fx_matches_eager,
    check_head_variants, check_injection, check_param_count, check_token_site_error, count_params, on_meta,
)
from plugattn.backbones import create_backbone, list_backbones
from plugattn.backbones.dynamixer import DynaMixer, DynaMixerBlock, DynaMixerOp, dynamixer_s
from plugattn.backbones.registry import BACKBONES
from plugattn.testing import assert_rel_close

SMALL = 56  # sequences of 8 then 4 tokens


def official_dynamixer_s_params() -> int:
    """The parameter count of the official ``dynamixer_s`` (ziyuwwang/DynaMixer), from its layer shapes."""

    def operation(c: int, length: int, heads: int, d: int = 2) -> int:
        out = c * c + c
        compress = c * heads * d + heads * d
        generate = length * d * length * length + length * length
        return out + compress + generate

    def block(c: int, length: int, heads: int) -> int:
        norms = 2 * (2 * c)
        mixing = 2 * operation(c, length, heads) + c * c + (c * (c // 4) + c // 4) + ((c // 4) * 3 * c + 3 * c) \
            + (c * c + c)
        channel_mlp = (c * 3 * c + 3 * c) + (3 * c * c + c)
        return norms + mixing + channel_mlp

    patch_embed = 3 * 7 * 7 * 192 + 192
    downsample = 192 * 384 * 2 * 2 + 384
    return (patch_embed + 4 * block(192, 32, 8) + downsample + (3 + 8 + 3) * block(384, 16, 16)
            + 2 * 384 + 384 * 1000 + 1000)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return dynamixer_s(num_classes=10, img_size=SMALL).eval()


@pytest.fixture(scope="module")
def x_small():
    return torch.randn(2, 3, SMALL, SMALL, generator=torch.Generator().manual_seed(1))


def test_registered():
    assert "dynamixer_s" in list_backbones("mlp")
    assert isinstance(create_backbone("dynamixer_s", num_classes=3, img_size=SMALL), DynaMixer)


def test_param_count_matches_official_config_and_paper():
    ours = on_meta(dynamixer_s)
    assert count_params(ours) == official_dynamixer_s_params() == 26_265_960
    check_param_count(ours, BACKBONES.get("dynamixer_s").info["params"])
    assert round(count_params(ours) / 1e6) == 26  # the paper's "26M"


def test_configuration_and_stochastic_depth():
    full = on_meta(dynamixer_s)
    ops = [full.network[i][0].attn.mix_h for i in (0, 2)]
    assert [(op.seq_len, op.num_heads, op.reduced_dim) for op in ops] == [(32, 8, 2), (16, 16, 2)]
    blocks = [m for m in full.modules() if isinstance(m, DynaMixerBlock)]
    assert len(blocks) == 18
    assert blocks[0].drop_path.drop_prob == 0.0 and blocks[-1].drop_path.drop_prob == pytest.approx(0.1)


def test_operation_matches_the_equations():
    """Restate Eq. (2)-(5) per head with loops: P = softmax_i(generate(concat_l compress(x_l))), y_o = sum_i P_io x_i."""
    torch.manual_seed(0)
    op = DynaMixerOp(dim=6, seq_len=4, num_heads=2, reduced_dim=2)
    x = torch.randn(3, 4, 6)
    expected = torch.empty_like(x)
    for n in range(3):
        compressed = op.compress(x[n]).reshape(4, 2, 2)  # (token, head, d)
        for head in range(2):
            logits = op.generate(compressed[:, head].reshape(-1)).reshape(4, 4)  # (input token, output token)
            mixing = logits.softmax(dim=0)
            tokens = x[n, :, 3 * head:3 * head + 3]  # (token, channels of the head)
            expected[n, :, 3 * head:3 * head + 3] = mixing.t() @ tokens
    expected = op.out(expected)
    assert_rel_close(op(x), expected, what="DynaMixer operation")


def test_mixing_matrices_are_column_stochastic():
    op = DynaMixerOp(dim=8, seq_len=5, num_heads=2)
    mixing = op.mixing_matrices(torch.randn(2, 5, 8))
    assert mixing.shape == (2, 2, 5, 5)
    assert_rel_close(mixing.sum(dim=-2), torch.ones(2, 2, 5), what="sum over input tokens")


def test_forward_backward(x_small):
    torch.manual_seed(0)
    check_forward_backward(dynamixer_s(num_classes=4, img_size=SMALL), x_small, 4)


def test_num_classes_and_in_chans():
    check_head_variants(partial(dynamixer_s, img_size=SMALL), torch.zeros(2, 3, SMALL, SMALL), 384, feature_hw=(4, 4))
    assert on_meta(dynamixer_s).default_input_size == 224


def test_fx_trace_equals_eager(model, x_small):
    check_fx_matches_eager(model, x_small)


def test_fixed_input_size_raises_clearly(model):
    check_fixed_input_size(model, built_for=SMALL, other=70)


def test_deterministic_init():
    check_deterministic_init(DynaMixer, layers=(1, 1), embed_dims=(16, 32), transitions=(True, False),
                             mlp_ratios=(3, 3), num_heads=(2, 4), reduced_dims=(2, 2), img_size=56)


def test_inject_eca_after_every_block(model, x_small):
    check_injection(model, "DynaMixerBlock", x_small[:1], expected_sites=18)


def test_token_sequences_are_refused_by_the_injector(model, x_small):
    check_token_site_error(model, "DynaMixerOp", x_small[:1])


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(num_heads=(8, 16)), "num_heads and reduced_dims need one entry per stage"),
        (dict(num_heads=(7, 16, 16, 16)), "num_heads must divide dim=192, got num_heads=7"),
        (dict(reduced_dims=(0, 2, 2, 2)), "reduced_dim must be an integer >= 1, got 0"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        on_meta(dynamixer_s, **kwargs)
