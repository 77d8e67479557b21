"""P2T-Tiny (Wu et al., TPAMI 2022): official-README count, pooling that follows the input size."""
import pytest
import torch
import torch.nn.functional as F

from .backbone_checks import ContractCase, contract_tests, model_fixture
from plugattn.backbones.p2t import PoolingAttention, PyramidPooling, PyramidPoolingTransformer, p2t_tiny, pyramid_pool

# official P2T README table: P2T-Tiny 11.1M parameters (rounded to 0.1M)
README_PARAMS = 11_100_000

CASE = ContractCase(
    p2t_tiny, "p2t_tiny", "vit", num_features=512, created_as="p2t_tiny", model_class=PyramidPoolingTransformer,
    train_on_fixture=True,
    reference_params=README_PARAMS, heads_with_weights=True, feature_shape=(2, 4, 512),
    fx_sizes=(96,), init_factory=p2t_tiny, init_kwargs=dict(num_classes=10),
    inject_sites=(("P2TStage", 4),), token_blocks=("P2TBlock",),
)
model = model_fixture(CASE)
test_contract = contract_tests(CASE)


def test_pooling_sizes_follow_the_input():
    # ratio 12 on the 56x56 stage-1 map of a 224 input -> round(56 / 12) = 5; on a 96 input (24x24) -> 2
    assert pyramid_pool(torch.randn(1, 2, 56, 56), 12).shape[-2:] == (5, 5)
    assert pyramid_pool(torch.randn(1, 2, 24, 24), 12).shape[-2:] == (2, 2)
    assert pyramid_pool(torch.randn(1, 2, 2, 2), 24).shape[-2:] == (1, 1)  # never zero cells
    pyramid = PyramidPooling(4, (1, 2, 3))
    assert pyramid(torch.randn(1, 4, 12, 12)).shape == (1, 144 + 36 + 16, 4)


def test_pooling_attention_matches_a_direct_statement():
    # Eq. (1)-(4): K, V from LN(concat(P_i + DWConv(P_i))), softmax(Q K^T / sqrt(d)) V, projection
    torch.manual_seed(0)
    attn = PoolingAttention(4, 1, PyramidPooling(4, (1, 2))).eval()
    x = torch.randn(1, 16, 4)
    x_map = x.transpose(1, 2).reshape(1, 4, 4, 4)
    levels = []
    for ratio, conv in zip((1, 2), attn.pyramid.d_convs):
        pooled = F.adaptive_avg_pool2d(x_map, 4 // ratio)
        levels.append((pooled + conv(pooled)).flatten(2))
    pooled = F.layer_norm(torch.cat(levels, 2).transpose(1, 2), (4,), attn.norm.weight, attn.norm.bias)
    k, v = attn.kv(pooled).split(4, dim=-1)
    weights = torch.softmax(attn.q(x) @ k.transpose(1, 2) / 2.0, dim=-1)
    expected = attn.proj(weights @ v)
    torch.testing.assert_close(attn(x, 4, 4), expected, rtol=1e-5, atol=1e-5)


def test_depthwise_convs_are_shared_within_a_stage(model):
    stage = model.stages[0]
    assert stage.blocks[0].attn.pyramid is stage.blocks[1].attn.pyramid is stage.pyramid


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_classes"):
        p2t_tiny(num_classes=-1)
    with pytest.raises(ValueError, match="depths"):
        p2t_tiny(depths=(2, 2, 2))
