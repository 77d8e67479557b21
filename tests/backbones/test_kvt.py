"""KVT: DeiT-S with k-NN attention (plugattn/backbones/kvt.py)."""
from functools import partial

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
from plugattn.backbones.kvt import KNNAttention, knn_mask_scores, kvt_deit_small_patch16_224
from plugattn.backbones.registry import BACKBONES
from plugattn.backbones.vit import Attention, VisionTransformer
from plugattn.testing import assert_rel_close

DEIT_S_PARAMS = 22_050_664  # timm deit_small_patch16_224, re-measured below


@pytest.fixture(scope="module")
def x64():
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return kvt_deit_small_patch16_224(num_classes=10, topk=8).eval()


def test_registered_with_aliases():
    assert "kvt_deit_small_patch16_224" in list_backbones("vit")
    assert create_backbone("kvt", num_classes=3, topk=7).blocks[5].attn.topk == 7


def test_param_count_equals_deit_small():
    ours = on_meta(kvt_deit_small_patch16_224)
    assert count_params(ours) == DEIT_S_PARAMS == timm_param_count("deit_small_patch16_224")
    check_param_count(ours, BACKBONES.get("kvt").info["params"])


def test_keys_match_timm_deit_small():
    check_keys_match_timm(kvt_deit_small_patch16_224, "deit_small_patch16_224")


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


def test_forward_backward(x64):
    torch.manual_seed(0)
    check_forward_backward(kvt_deit_small_patch16_224(num_classes=4, topk=5), x64, 4)


def test_num_classes_and_in_chans():
    check_token_head_variants(kvt_deit_small_patch16_224, torch.zeros(2, 3, 64, 64), 384)


def test_fx_matches_eager(model, x64):
    check_fx_matches_eager(model, x64)


def test_deterministic_init():
    check_deterministic_init(VisionTransformer, img_size=32, patch_size=8, embed_dim=16, depth=2, num_heads=2,
                             attn_layer=partial(KNNAttention, topk=4))


def test_inject_after_patch_embed_and_token_error(model, x64):
    check_injection(model, "PatchEmbed", x64[:1], expected_sites=1)
    check_token_site_error(model, "KNNAttention", x64[:1])


@pytest.mark.parametrize("topk", [0, -3, 2.5])
def test_bad_topk(topk):
    with pytest.raises(ValueError, match=f"topk must be an integer >= 1, got {topk}"):
        kvt_deit_small_patch16_224(topk=topk)
