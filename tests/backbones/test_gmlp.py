"""gMLP-S (plugattn/backbones/gmlp.py)."""
import pytest
import torch
import torch.nn.functional as F

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
from plugattn.backbones.gmlp import GMlp, SpatialGatingUnit, gmlp_s16_224
from plugattn.backbones.registry import BACKBONES
from plugattn.testing import assert_rel_close

# timm's published count, re-measured by building timm's model (test_param_count_matches_timm)
REFERENCE_PARAMS = 19_422_656


def tiny(**kwargs):
    config = dict(img_size=32, patch_size=8, embed_dim=16, depth=2, mlp_ratio=4.0)
    return GMlp(**{**config, **kwargs})


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return gmlp_s16_224(num_classes=10).eval()


@pytest.fixture(scope="module")
def x224():
    return torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))


def test_registered_in_mlp_family():
    assert "gmlp_s16_224" in list_backbones("mlp")
    assert create_backbone("gmlp_s16_224", num_classes=3).head.out_features == 3


def test_param_count_matches_timm():
    ours = on_meta(gmlp_s16_224)
    assert count_params(ours) == REFERENCE_PARAMS == timm_param_count("gmlp_s16_224")
    check_param_count(ours, BACKBONES.get("gmlp_s16_224").info["params"])


def test_state_dict_keys_match_timm():
    check_keys_match_timm(gmlp_s16_224, "gmlp_s16_224")


def test_table1_gmlp_s_sizes():
    # Table 1 gMLP-S: L=30, d_model=256, d_ffn=1536; spatial W is n x n with n = 14 * 14
    model = on_meta(gmlp_s16_224)
    assert len(model.blocks) == 30
    block = model.blocks[0].mlp_channels
    assert block.fc1.weight.shape == (1536, 256) and block.fc2.weight.shape == (256, 768)
    assert block.gate.proj.weight.shape == (196, 196)


def test_timm_weights_load_and_match(x224):
    check_timm_outputs_match(gmlp_s16_224(), "gmlp_s16_224", x224)


def test_spatial_gating_unit_restated():
    # s(Z) = Z1 * (W LN(Z2) + b), W mixing tokens (Eq. (2)-(3))
    unit = SpatialGatingUnit(dim=12, num_tokens=5)
    torch.nn.init.normal_(unit.proj.weight)
    torch.nn.init.normal_(unit.proj.bias)
    z = torch.randn(3, 5, 12)
    z1, z2 = z[..., :6], z[..., 6:]
    gate = torch.einsum("mn,bnd->bmd", unit.proj.weight, F.layer_norm(z2, (6,))) + unit.proj.bias[None, :, None]
    with torch.no_grad():
        assert_rel_close(unit(z), z1 * gate, what="SGU vs Eq. (3)")


def test_gate_starts_near_identity():
    # Section 2.1: W ~ 0, b = 1, so s(Z) ~ Z1 at initialisation
    torch.manual_seed(0)
    unit = tiny().blocks[0].mlp_channels.gate
    assert float(unit.proj.weight.detach().abs().max()) < 1e-5 and bool((unit.proj.bias == 1).all())
    z = torch.randn(2, 16, 64)
    with torch.no_grad():
        torch.testing.assert_close(unit(z), z[..., :32], atol=1e-4, rtol=0)


def test_forward_backward_at_224(x224):
    torch.manual_seed(0)
    # batch 1: the model is fixed to 224 x 224, one image keeps CI fast
    check_forward_backward(gmlp_s16_224(num_classes=4), x224, 4)


def test_features_and_default_size(model, x224):
    assert model.default_input_size == 224
    with torch.no_grad():
        assert model.forward_features(x224).shape == (1, 196, 256)


def test_num_classes_and_in_chans():
    check_token_head_variants(gmlp_s16_224, torch.zeros(1, 3, 224, 224), 256)


def test_other_input_size_raises_clear_error_eager_and_traced(model):
    message = r"GMlp is defined for 224x224 inputs only.*got input of shape \(1, 3, 96, 96\)"
    with pytest.raises(ValueError, match=message):
        model(torch.zeros(1, 3, 96, 96))
    with pytest.raises(ValueError, match=message):
        torch.fx.symbolic_trace(model)(torch.zeros(1, 3, 96, 96))


def test_fx_trace_equals_eager(model, x224):
    check_fx_matches_eager(model, x224)


def test_deterministic_init():
    check_deterministic_init(tiny, num_classes=3)


def test_inject_after_patch_embed(model, x224):
    check_injection(model, "PatchEmbed", x224, expected_sites=1)


def test_token_block_gives_injector_error(model, x224):
    check_token_site_error(model, "SpatialGatingBlock", x224)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(mlp_ratio=1.5, embed_dim=5), r"d_ffn\) must be an even integer >= 2, got mlp_ratio=1.5"),
        (dict(img_size=36), "patch_size must divide img_size=36"),
        (dict(drop_path_rate=-0.1), r"drop_path_rate must be a number in \[0, 1\)"),
        (dict(embed_dim=0), "embed_dim must be an integer >= 1, got 0"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tiny(**kwargs)


def test_odd_gate_width_raises():
    with pytest.raises(ValueError, match="dim must be even, got 7"):
        SpatialGatingUnit(7, num_tokens=4)
