"""DynaMixer-S (plugattn/backbones/mlp/dynamixer.py)."""
import pytest
import torch

from ..builders import model_fixture, on_meta
from ..contract import ContractCase, contract_tests
from plugattn.backbones.mlp.dynamixer import DynaMixer, DynaMixerBlock, DynaMixerOp, dynamixer_s
from plugattn.parameters import count_parameters
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


CASE = ContractCase(
    dynamixer_s, "dynamixer_s", "mlp", num_features=384, created_as="dynamixer_s", model_class=DynaMixer,
    params=26_265_960,  # the official dynamixer_s (official_dynamixer_s_params), the paper's "26M"
    size=SMALL, build_kwargs=dict(img_size=SMALL), map_features=True, feature_hw=(4, 4), fixed_size_other=70,
    init_factory=DynaMixer, init_kwargs=dict(layers=(1, 1), embed_dims=(16, 32), transitions=(True, False),
                                             mlp_ratios=(3, 3), num_heads=(2, 4), reduced_dims=(2, 2), img_size=56),
    inject_sites=(("DynaMixerBlock", 18),), token_blocks=("DynaMixerOp",),
)
model = model_fixture(CASE)
test_contract = contract_tests(CASE)


def test_param_count_of_the_official_config_and_paper():
    assert official_dynamixer_s_params() == 26_265_960
    assert round(count_parameters(on_meta(dynamixer_s)) / 1e6) == 26  # the paper's "26M"


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
