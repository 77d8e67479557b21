"""P2T-Tiny (Wu et al., TPAMI 2022) as published, the first release as p2t_tiny_v1, the official key layout,
pooling that follows the input size."""
import json
import pathlib

import pytest
import torch
import torch.nn.functional as F

from ..builders import model_fixture, on_meta
from ..contract import ContractCase, contract_tests
from plugattn.backbones import BACKBONES, create_backbone, load_external_weights
from plugattn.backbones.vit.p2t import (
    PoolingAttention, PyramidPooling, PyramidPoolingTransformer, p2t_tiny, p2t_tiny_v1, pyramid_pool,
)
from plugattn.parameters import count_parameters

# the official p2t_tiny (github.com/yuhuan-wu/P2T, p2t.py), built from the official code: 11,590,840
# parameters (README table: 11.6M); its state-dict keys and shapes are recorded in p2t_tiny_official_keys.json
OFFICIAL_PARAMS = 11_590_840
OFFICIAL_KEYS = json.loads((pathlib.Path(__file__).parents[1] / "data" / "p2t_tiny_official_keys.json").read_text())
V1_README_PARAMS = 11_100_000  # the first release's README: P2T-Tiny 11.1M (widths 64-512, depths 2-2-2-2)

CASE = ContractCase(
    p2t_tiny, "p2t_tiny", "vit", num_features=384, created_as="p2t_tiny", model_class=PyramidPoolingTransformer,
    train_on_fixture=True, params=OFFICIAL_PARAMS,
    reference_params=OFFICIAL_PARAMS, heads_with_weights=True, feature_shape=(2, 4, 384),
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


def test_published_architecture(model):
    assert [embed.proj.out_channels for embed in model.patch_embeds] == [48, 96, 240, 384]
    assert [len(stage.blocks) for stage in model.stages] == [2, 2, 6, 3]
    assert [(e.proj.kernel_size, e.proj.stride, e.proj.padding) for e in model.patch_embeds] == [
        ((7, 7), (4, 4), (3, 3))] + [((3, 3), (2, 2), (1, 1))] * 3  # overlapping embeddings


def test_official_state_dict_layout_loads():
    # every official tensor (284, as recorded from the official code) lands on one of ours of its shape
    assert len(OFFICIAL_KEYS) == 284 and sum(
        torch.Size(shape).numel() for key, shape in OFFICIAL_KEYS) == OFFICIAL_PARAMS
    generator = torch.Generator().manual_seed(0)
    official = {key: torch.randn(shape, generator=generator) for key, shape in OFFICIAL_KEYS}
    ours = load_external_weights(on_meta(p2t_tiny).to_empty(device="cpu"), official, "official")
    state = ours.state_dict()
    pairs = [("patch_embed1.proj.weight", "patch_embeds.0.proj.weight"),
             ("block3.5.attn.q.0.weight", "stages.2.blocks.5.attn.q.weight"),
             ("block4.2.attn.kv.0.bias", "stages.3.blocks.2.attn.kv.bias"),
             ("d_convs2.3.weight", "stages.1.pyramid.d_convs.3.weight"),
             ("d_convs2.3.weight", "stages.1.blocks.1.attn.pyramid.d_convs.3.weight"),
             ("block1.1.mlp.fc2.weight", "stages.0.blocks.1.mlp.fc2.weight"), ("head.bias", "head.bias")]
    for theirs, our_key in pairs:
        assert torch.equal(state[our_key], official[theirs]), (theirs, our_key)
    broken = dict(official)
    del broken["block2.1.attn.q.0.weight"]
    with pytest.raises(ValueError, match=r"missing keys: stages.1.blocks.1.attn.q.weight"):
        load_external_weights(on_meta(p2t_tiny), broken, "official")


def test_first_release_is_kept_as_p2t_tiny_v1():
    v1 = on_meta(p2t_tiny_v1)
    assert count_parameters(v1) == 11_109_864  # 0.09 % from the 11.1M of that release's README
    assert BACKBONES.get("p2t_tiny_v1").info["params"] == V1_README_PARAMS
    assert [e.proj.kernel_size for e in v1.patch_embeds] == [(4, 4), (2, 2), (2, 2), (2, 2)]
    assert [len(stage.blocks) for stage in v1.stages] == [2, 2, 2, 2]
    torch.manual_seed(0)
    out = create_backbone("p2t_tiny_v1", num_classes=3).eval()(torch.randn(1, 3, 64, 64))
    assert out.shape == (1, 3) and torch.isfinite(out).all()
