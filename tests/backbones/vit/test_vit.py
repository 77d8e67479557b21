"""ViT-Ti/S/B (plugattn/backbones/vit/vit.py)."""
import pytest
import torch

from ..builders import model_fixture, on_meta, x64
from ..contract import (
    ContractCase, check_keys_match_timm, check_reference_count, check_timm_outputs_match, contract_tests,
)
from plugattn.testing import assert_rel_close
from plugattn.backbones import create_backbone, list_backbones, load_external_weights
from plugattn.backbones.registry import BACKBONES
from plugattn.backbones.layers import Mlp, resize_pos_embed
from plugattn.backbones.vit.vit import VisionTransformer, vit_base_patch16_224, vit_tiny_patch16_224

NAMES = ["vit_tiny_patch16_224", "vit_small_patch16_224", "vit_base_patch16_224"]
# timm's published counts, re-measured by building timm's models (test_param_count_matches_timm)
REFERENCE_PARAMS = {"vit_tiny_patch16_224": 5_717_416, "vit_small_patch16_224": 22_050_664,
                    "vit_base_patch16_224": 86_567_656}

CASE = ContractCase(
    vit_tiny_patch16_224, "vit_tiny_patch16_224", "vit", num_features=192,
    train_kwargs=dict(drop_path_rate=0.1), fx_sizes=(224,),
    init_factory=VisionTransformer, init_kwargs=dict(img_size=32, patch_size=8, embed_dim=16, depth=2, num_heads=2),
    inject_sites=(("PatchEmbed", 1),), token_blocks=("Block",),
)
model = model_fixture(CASE)
test_contract = contract_tests(CASE)


def test_registered_in_vit_family():
    assert set(NAMES) <= set(list_backbones("vit"))
    assert create_backbone("vit_tiny_patch16_224", num_classes=3).head.out_features == 3


@pytest.mark.parametrize("name", NAMES)
def test_param_count_matches_timm(name):
    check_reference_count(BACKBONES.get(name).factory, name, REFERENCE_PARAMS[name], timm_name=name)


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_keys_match_timm(name):
    check_keys_match_timm(BACKBONES.get(name).factory, name)


def test_timm_weights_load_and_match_tiny_at_224():
    ours = vit_tiny_patch16_224()
    check_timm_outputs_match(ours, "vit_tiny_patch16_224", torch.randn(1, 3, 224, 224))


def test_timm_weights_load_and_match_base():
    # ViT-B/16 built for 96x96 (6 x 6 patch grid) on both sides keeps the comparison fast
    ours = on_meta(vit_base_patch16_224, img_size=96).to_empty(device="cpu")
    check_timm_outputs_match(ours, "vit_base_patch16_224", torch.randn(1, 3, 96, 96), on_meta=True, img_size=96)


def test_mismatched_weights_raise(model):
    state = vit_tiny_patch16_224().state_dict()
    del state["blocks.3.mlp.fc2.weight"]
    state["pos_embed"] = torch.zeros(1, 50, 192)
    with pytest.raises(ValueError, match=r"missing keys: blocks\.3\.mlp\.fc2\.weight.*mis-shaped keys: pos_embed"):
        load_external_weights(vit_tiny_patch16_224(), state, "timm")


def test_class_token_first_and_gelu_between_mlp_layers(model):
    # Eq. (1)-(4) restated: z0 = [x_class; patches E] + E_pos, blocks, LN, head on token 0
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        patches = model.patch_embed.proj(x).flatten(2).transpose(1, 2)  # (1, 196, 192)
        z = torch.cat([model.cls_token, patches], dim=1) + model.pos_embed
        for block in model.blocks:
            z = z + block.attn(block.norm1(z))
            z = z + block.mlp.fc2(torch.nn.functional.gelu(block.mlp.fc1(block.norm2(z))))
        expected = model.head(model.norm(z)[:, 0])
        assert_rel_close(model(x), expected, what="ViT vs Eq. (1)-(4)")
    mlp = model.blocks[0].mlp
    assert isinstance(mlp, Mlp) and [type(m).__name__ for m in mlp.children()] == ["Linear", "GELU", "Linear"]


def test_features_and_default_size(model, x64):
    assert model.default_input_size == 224
    with torch.no_grad():
        assert model.forward_features(x64).shape == (2, 1 + 4 * 4, 192)


def test_pos_embed_resize_is_identity_at_default_grid_and_bicubic_otherwise():
    pos = torch.randn(1, 1 + 14 * 14, 8)
    assert resize_pos_embed(pos, (14, 14), 14, 14) is pos
    resized = resize_pos_embed(pos, (14, 14), 7, 5)
    assert resized.shape == (1, 1 + 35, 8)
    assert torch.equal(resized[:, 0], pos[:, 0])  # the class token's embedding is kept


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(num_heads=3), "num_heads must divide dim=16, got num_heads=3"),
        (dict(img_size=36), "patch_size must divide img_size=36"),
        (dict(drop_path_rate=1.5), r"drop_path_rate must be a number in \[0, 1\), got 1.5"),
        (dict(depth=0), "depth must be an integer >= 1, got 0"),
        (dict(num_classes=-1), "num_classes"),
    ],
)
def test_bad_arguments(kwargs, match):
    config = dict(img_size=32, patch_size=8, embed_dim=16, depth=1, num_heads=2)
    with pytest.raises(ValueError, match=match):
        VisionTransformer(**{**config, **kwargs})
