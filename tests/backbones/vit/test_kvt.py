"""KVT: DeiT-S with k-NN attention (plugattn/backbones/vit/kvt.py)."""
from functools import partial

import pytest
import torch

from ..builders import model_fixture
from ..contract import ContractCase, check_timm_outputs_match, contract_tests
from plugattn.backbones import create_backbone, list_backbones
from plugattn.backbones.vit.kvt import KNNAttention, knn_mask_scores, kvt_deit_small_patch16_224
from plugattn.backbones.layers import Attention
from plugattn.backbones.vit.vit import VisionTransformer
from plugattn.testing import assert_rel_close

CASE = ContractCase(
    kvt_deit_small_patch16_224, "kvt", "vit", num_features=384,
    params=22_050_664, timm_name="deit_small_patch16_224",  # timm deit_small_patch16_224, re-measured
    model_kwargs=dict(topk=8), train_kwargs=dict(topk=5),
    init_factory=VisionTransformer, init_kwargs=dict(img_size=32, patch_size=8, embed_dim=16, depth=2, num_heads=2,
                                                     attn_layer=partial(KNNAttention, topk=4)),
    inject_sites=(("PatchEmbed", 1),), token_blocks=("KNNAttention",),
)
model = model_fixture(CASE)
test_contract = contract_tests(CASE)


def test_registered_with_aliases():
    assert "kvt_deit_small_patch16_224" in list_backbones("vit")
    assert create_backbone("kvt", num_classes=3, topk=7).blocks[5].attn.topk == 7


def test_deit_small_weights_match_timm_with_k_all_tokens():
    # 96 x 96 input: 36 patches + class token = 37 tokens, k = 37 keeps every key
    ours = kvt_deit_small_patch16_224(topk=37, img_size=96)
    check_timm_outputs_match(ours, "deit_small_patch16_224", torch.randn(1, 3, 96, 96), img_size=96)


def _with_same_weights(topk):
    torch.manual_seed(0)
    plain = Attention(32, num_heads=4)
    knn = KNNAttention(32, num_heads=4, topk=topk)
    knn.load_state_dict(plain.state_dict())
    return plain.eval(), knn.eval()


@pytest.mark.parametrize("topk", [9, 1000])
def test_k_at_least_tokens_equals_plain_attention(topk):
    plain, knn = _with_same_weights(topk)
    x = torch.randn(2, 9, 32)
    with torch.no_grad():
        assert_rel_close(knn(x), plain(x), what="k-NN attention with k >= N")


def test_top_k_attention_matches_restated_equation():
    # Eq. (2) restated per row: softmax over the k largest scores only, zero weight elsewhere
    plain, knn = _with_same_weights(3)
    x = torch.randn(2, 9, 32)
    with torch.no_grad():
        q, k, v = knn.split_heads(x)
        scores = q @ k.transpose(-2, -1) / 8 ** 0.5  # d_head = 32 / 4
        kth_largest = scores.sort(dim=-1, descending=True).values[..., 2:3]
        weights = torch.where(scores >= kth_largest, scores.exp(), torch.zeros_like(scores))
        weights = weights / weights.sum(-1, keepdim=True)
        expected = knn.proj((weights @ v).transpose(1, 2).reshape(2, 9, 32))
        assert_rel_close(knn(x), expected, what="k-NN attention vs Eq. (2)")
        assert (plain(x) - knn(x)).abs().max() > 1e-3  # k < N really changes the result


def test_mask_keeps_exactly_k_per_row():
    masked = knn_mask_scores(torch.randn(2, 3, 10, 10), 4)
    assert torch.equal(torch.isfinite(masked).sum(-1), torch.full((2, 3, 10), 4))


@pytest.mark.parametrize("topk", [0, -3, 2.5])
def test_bad_topk(topk):
    with pytest.raises(ValueError, match=f"topk must be an integer >= 1, got {topk}"):
        kvt_deit_small_patch16_224(topk=topk)
