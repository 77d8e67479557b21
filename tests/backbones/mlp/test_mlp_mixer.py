"""MLP-Mixer S/16 and B/16 (plugattn/backbones/mlp/mlp_mixer.py)."""
import pytest
import torch
import torch.nn.functional as F

from ..builders import model_fixture, on_meta, x224
from ..contract import (
    ContractCase, check_keys_match_timm, check_reference_count, check_timm_outputs_match, contract_tests,
)
from plugattn.backbones import create_backbone, list_backbones, load_external_weights
from plugattn.backbones.mlp.mlp_mixer import MixerBlock, MlpMixer, mixer_b16_224, mixer_s16_224
from plugattn.backbones.registry import BACKBONES
from plugattn.testing import assert_rel_close

NAMES = ["mixer_s16_224", "mixer_b16_224"]
# timm's published counts, re-measured by building timm's models (test_param_count_matches_timm)
REFERENCE_PARAMS = {"mixer_s16_224": 18_528_264, "mixer_b16_224": 59_880_472}


def tiny(**kwargs):
    config = dict(img_size=32, patch_size=8, embed_dim=16, depth=2)
    return MlpMixer(**{**config, **kwargs})


# batch 1 at 224: the model is fixed to 224 x 224, one image keeps CI fast
CASE = ContractCase(
    mixer_s16_224, "mixer_s16_224", "mlp", num_features=512, size=224, batch=1,
    train_kwargs=dict(drop_path_rate=0.1), feature_shape=(1, 196, 512), fixed_size_other=64,
    init_factory=tiny, init_kwargs=dict(num_classes=3),
    inject_sites=(("PatchEmbed", 1),), token_blocks=("MixerBlock",),
)
model = model_fixture(CASE)
test_contract = contract_tests(CASE)


def test_registered_in_mlp_family():
    assert set(NAMES) <= set(list_backbones("mlp"))
    assert create_backbone("mixer_s16_224", num_classes=3).head.out_features == 3


@pytest.mark.parametrize("name", NAMES)
def test_param_count_matches_timm(name):
    check_reference_count(BACKBONES.get(name).factory, name, REFERENCE_PARAMS[name], timm_name=name)


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_keys_match_timm(name):
    check_keys_match_timm(BACKBONES.get(name).factory, name)


def test_table1_widths():
    # Table 1: S/16 D_S=256, D_C=2048, 8 layers; B/16 D_S=384, D_C=3072, 12 layers
    for factory, ds, dc, depth in ((mixer_s16_224, 256, 2048, 8), (mixer_b16_224, 384, 3072, 12)):
        model = on_meta(factory)
        block = model.blocks[0]
        assert len(model.blocks) == depth and all(isinstance(b, MixerBlock) for b in model.blocks)
        assert block.mlp_tokens.fc1.weight.shape == (ds, 196)
        assert block.mlp_channels.fc1.weight.shape[0] == dc


def test_timm_weights_load_and_match_s16(x224):
    check_timm_outputs_match(mixer_s16_224(), "mixer_s16_224", x224)


def test_mismatched_weights_raise():
    state = on_meta(mixer_b16_224).state_dict()
    with pytest.raises(ValueError, match=r"mis-shaped keys: stem\.proj\.weight"):
        load_external_weights(on_meta(mixer_s16_224), state, "timm")


def test_equation_1_restated():
    # U = X + W2 gelu(W1 LN(X)^T)^T (token mixing), Y = U + W4 gelu(W3 LN(U)) (channel mixing)
    torch.manual_seed(0)
    model = tiny(num_classes=4).eval()
    for p in model.head.parameters():
        torch.nn.init.normal_(p)  # the paper init zeroes the head
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        table = model.stem.proj(x).flatten(2).transpose(1, 2)  # (B, S=16, C=16)
        for block in model.blocks:
            t = block.mlp_tokens
            ln = F.layer_norm(table, (16,), block.norm1.weight, block.norm1.bias, 1e-6)
            table = table + (t.fc2.weight @ F.gelu(t.fc1.weight @ ln + t.fc1.bias[:, None]) + t.fc2.bias[:, None])
            c = block.mlp_channels
            ln = F.layer_norm(table, (16,), block.norm2.weight, block.norm2.bias, 1e-6)
            table = table + F.linear(F.gelu(F.linear(ln, c.fc1.weight, c.fc1.bias)), c.fc2.weight, c.fc2.bias)
        pooled = F.layer_norm(table, (16,), model.norm.weight, model.norm.bias, 1e-6).mean(1)
        assert_rel_close(model(x), model.head(pooled), what="Mixer vs Eq. (1)")


def test_headless_model_has_identity_head():
    assert isinstance(on_meta(mixer_s16_224, num_classes=0).head, torch.nn.Identity)


def test_img_size_builds_other_sizes():
    assert tiny()(torch.zeros(1, 3, 32, 32)).shape == (1, 1000)


def test_init_as_reference():
    torch.manual_seed(0)
    model = tiny(num_classes=3)
    assert not model.head.weight.any() and not model.head.bias.any()
    fc1 = model.blocks[0].mlp_channels.fc1.requires_grad_(False)
    bound = (6 / (fc1.in_features + fc1.out_features)) ** 0.5  # Xavier uniform
    assert float(fc1.weight.abs().max()) <= bound and float(fc1.weight.abs().max()) > 0.8 * bound
    assert 0 < float(fc1.bias.abs().max()) < 1e-5  # N(0, 1e-6) MLP biases


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(img_size=36), "patch_size must divide img_size=36"),
        (dict(mlp_ratio=(0.5,)), "mlp_ratio must be two positive ratios"),
        (dict(drop_path_rate=1.5), r"drop_path_rate must be a number in \[0, 1\), got 1.5"),
        (dict(depth=0), "depth must be an integer >= 1, got 0"),
        (dict(num_classes=-1), "num_classes"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tiny(**kwargs)
