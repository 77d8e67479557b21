"""ViT-Ti/S/B (plugattn/backbones/vit.py)."""
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
from plugattn.testing import assert_rel_close
from plugattn.backbones import create_backbone, list_backbones, load_external_weights
from plugattn.backbones.registry import BACKBONES
from plugattn.backbones.vit import Mlp, VisionTransformer, resize_pos_embed, vit_base_patch16_224, vit_tiny_patch16_224

NAMES = ["vit_tiny_patch16_224", "vit_small_patch16_224", "vit_base_patch16_224"]
# timm's published counts, re-measured by building timm's models (test_param_count_matches_timm)
REFERENCE_PARAMS = {"vit_tiny_patch16_224": 5_717_416, "vit_small_patch16_224": 22_050_664,
                    "vit_base_patch16_224": 86_567_656}


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return vit_tiny_patch16_224(num_classes=10).eval()


@pytest.fixture(scope="module")
def x64():
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))


def test_registered_in_vit_family():
    assert set(NAMES) <= set(list_backbones("vit"))
    assert create_backbone("vit_tiny_patch16_224", num_classes=3).head.out_features == 3


@pytest.mark.parametrize("name", NAMES)
def test_param_count_matches_timm(name):
    ours = on_meta(BACKBONES.get(name).factory)
    assert count_params(ours) == REFERENCE_PARAMS[name] == timm_param_count(name)
    check_param_count(ours, BACKBONES.get(name).info["params"])


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


def test_mismatched_weights_raise(tiny):
    state = vit_tiny_patch16_224().state_dict()
    del state["blocks.3.mlp.fc2.weight"]
    state["pos_embed"] = torch.zeros(1, 50, 192)
    with pytest.raises(ValueError, match=r"missing keys: blocks\.3\.mlp\.fc2\.weight.*mis-shaped keys: pos_embed"):
        load_external_weights(vit_tiny_patch16_224(), state, "timm")


def test_class_token_first_and_gelu_between_mlp_layers(tiny):
    # Eq. (1)-(4) restated: z0 = [x_class; patches E] + E_pos, blocks, LN, head on token 0
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        patches = tiny.patch_embed.proj(x).flatten(2).transpose(1, 2)  # (1, 196, 192)
        z = torch.cat([tiny.cls_token, patches], dim=1) + tiny.pos_embed
        for block in tiny.blocks:
            z = z + block.attn(block.norm1(z))
            z = z + block.mlp.fc2(torch.nn.functional.gelu(block.mlp.fc1(block.norm2(z))))
        expected = tiny.head(tiny.norm(z)[:, 0])
        assert_rel_close(tiny(x), expected, what="ViT vs Eq. (1)-(4)")
    mlp = tiny.blocks[0].mlp
    assert isinstance(mlp, Mlp) and [type(m).__name__ for m in mlp.children()] == ["Linear", "GELU", "Linear"]


def test_forward_backward_other_size(x64):
    torch.manual_seed(0)
    check_forward_backward(vit_tiny_patch16_224(num_classes=4, drop_path_rate=0.1), x64, 4)


def test_features_and_default_size(tiny, x64):
    assert tiny.default_input_size == 224
    with torch.no_grad():
        assert tiny.forward_features(x64).shape == (2, 1 + 4 * 4, 192)


def test_num_classes_and_in_chans():
    check_token_head_variants(vit_tiny_patch16_224, torch.zeros(2, 3, 64, 64), 192)


def test_fx_matches_eager_default_and_other_size(tiny, x64):
    check_fx_matches_eager(tiny, torch.randn(1, 3, 224, 224))
    check_fx_matches_eager(tiny, x64)


def test_pos_embed_resize_is_identity_at_default_grid_and_bicubic_otherwise():
    pos = torch.randn(1, 1 + 14 * 14, 8)
    assert resize_pos_embed(pos, (14, 14), 14, 14) is pos
    resized = resize_pos_embed(pos, (14, 14), 7, 5)
    assert resized.shape == (1, 1 + 35, 8)
    assert torch.equal(resized[:, 0], pos[:, 0])  # the class token's embedding is kept


def test_deterministic_init():
    check_deterministic_init(VisionTransformer, img_size=32, patch_size=8, embed_dim=16, depth=2, num_heads=2)


def test_inject_after_patch_embed(tiny, x64):
    check_injection(tiny, "PatchEmbed", x64[:1], expected_sites=1)


def test_token_block_gives_injector_error(tiny, x64):
    check_token_site_error(tiny, "Block", x64[:1])


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
