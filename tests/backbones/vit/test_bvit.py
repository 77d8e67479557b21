"""BViT-S (Li et al., IEEE TNNLS 2023): DeiT-S + parameter-free broad attention."""
from functools import partial

import pytest
import torch

from ..builders import model_fixture, on_meta, timm_param_count
from ..contract import ContractCase, check_keys_match_timm, check_timm_outputs_match, contract_tests
from plugattn.backbones.vit.bvit import BroadAttention, BViT, bvit_small
from plugattn.parameters import count_parameters

DEIT_S_PARAMS = 22_050_664  # timm vit_small_patch16_224 == deit_small_patch16_224; broad attention adds 0
# the official BViT (koala719/BViT, model/layer/bvit.py) has no qkv bias: 12 layers x 3 * 384 biases fewer
BVIT_S_PARAMS = DEIT_S_PARAMS - 12 * 3 * 384  # 22,036,840
SIZE = 64

CASE = ContractCase(
    bvit_small, "bvit_small", "vit", num_features=384, created_as="bvit_small", model_class=BViT,
    train_on_fixture=True,
    params=BVIT_S_PARAMS, reference_params=BVIT_S_PARAMS,
    size=SIZE, heads_with_weights=True, feature_shape=(2, 17, 384),  # 64 / 16 = 4 x 4 patches + the class token
    fx_sizes=(224,), init_factory=bvit_small, init_kwargs=dict(num_classes=10),
    inject_sites=(("PatchEmbed", 1),), token_blocks=("BViTBlock",),
)
model = model_fixture(CASE)
test_contract = contract_tests(CASE)


def test_broad_attention_adds_no_parameters():
    assert count_parameters(on_meta(bvit_small).broad_attention) == 0


def test_qkv_has_no_bias_as_the_official_code(model):
    assert all(block.attn.qkv.bias is None for block in model.blocks)
    assert timm_param_count("deit_small_patch16_224", qkv_bias=False) == BVIT_S_PARAMS
    check_keys_match_timm(bvit_small, "deit_small_patch16_224", qkv_bias=False)


def test_without_broad_attention_it_is_timm_deit_s():
    ours = bvit_small(img_size=SIZE, broad_weight=0.0, qkv_bias=True)
    assert count_parameters(on_meta(bvit_small, qkv_bias=True)) == DEIT_S_PARAMS
    check_keys_match_timm(partial(bvit_small, qkv_bias=True), "deit_small_patch16_224")
    check_timm_outputs_match(ours, "deit_small_patch16_224", torch.randn(1, 3, SIZE, SIZE), img_size=SIZE)


def test_broad_attention_matches_a_direct_statement():
    # softmax(Q_b K_b^T / sqrt(d)) V_b on per-head concatenations, then mean over groups of heads*L*d / D
    torch.manual_seed(0)
    qs, ks, vs = ([torch.randn(2, 2, 5, 4) for _ in range(3)] for _ in range(3))  # L = 3, heads 2, d = 4
    out = BroadAttention(8)(qs, ks, vs)
    q, k, v = torch.cat(qs, -1), torch.cat(ks, -1), torch.cat(vs, -1)  # (2, 2, 5, 12)
    attended = torch.softmax(q @ k.transpose(-1, -2) / 2.0, dim=-1) @ v  # sqrt(d) = 2
    merged = attended.transpose(1, 2).reshape(2, 5, 24)  # heads merged: 24 = 2 * 3 * 4 features
    expected = merged.reshape(2, 5, 8, 3).mean(-1)  # 24 -> 8: averages of 3 consecutive features
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_broad_term_is_added_with_its_weight(model):
    # before the final LayerNorm, the tokens differ from the plain ViT's by exactly 0.4 * broad attention
    plain = bvit_small(num_classes=10, broad_weight=0.0)
    plain.load_state_dict(model.state_dict())
    seen = {}
    hooks = [model.broad_attention.register_forward_hook(lambda m, i, o: seen.setdefault("term", o))]
    for key, net in (("broad", model), ("plain", plain)):
        hooks.append(net.norm.register_forward_hook(lambda m, i, o, key=key: seen.setdefault(key, i[0])))
    x = torch.randn(1, 3, SIZE, SIZE)
    with torch.no_grad():
        model.eval().forward_features(x)
        plain.eval().forward_features(x)
    for hook in hooks:
        hook.remove()
    assert model.broad_weight == 0.4
    assert seen["term"].abs().max() > 0
    torch.testing.assert_close(seen["broad"] - seen["plain"], 0.4 * seen["term"], rtol=1e-4, atol=1e-5)


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_classes"):
        bvit_small(num_classes=-1)
    with pytest.raises(ValueError, match="broad_weight"):
        bvit_small(broad_weight=-0.1)
    with pytest.raises(ValueError, match="drop_path_rate"):
        bvit_small(drop_path_rate=1.5)
