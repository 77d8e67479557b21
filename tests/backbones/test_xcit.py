"""XCiT-T12/16 (plugattn/backbones/xcit.py)."""
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
from plugattn.backbones.registry import BACKBONES
from plugattn.backbones.xcit import XCA, XCiT, xcit_tiny_12_p16_224
from plugattn.testing import assert_rel_close

T12_PARAMS = 6_716_272  # timm xcit_tiny_12_p16_224, re-measured below


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return xcit_tiny_12_p16_224(num_classes=10).eval()


@pytest.fixture(scope="module")
def x64():
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))


def test_registered():
    assert "xcit_tiny_12_p16_224" in list_backbones("vit")
    assert create_backbone("xcit_t12", num_classes=3).head.out_features == 3


def test_param_count_matches_timm():
    ours = on_meta(xcit_tiny_12_p16_224)
    assert count_params(ours) == T12_PARAMS == timm_param_count("xcit_tiny_12_p16_224")
    check_param_count(ours, BACKBONES.get("xcit_t12").info["params"])


def test_keys_match_timm():
    check_keys_match_timm(xcit_tiny_12_p16_224, "xcit_tiny_12_p16_224")


def test_timm_weights_load_and_match_at_224():
    check_timm_outputs_match(xcit_tiny_12_p16_224(), "xcit_tiny_12_p16_224", torch.randn(1, 3, 224, 224))


def test_timm_weights_match_at_other_size():
    check_timm_outputs_match(xcit_tiny_12_p16_224(), "xcit_tiny_12_p16_224", torch.randn(1, 3, 96, 96), seed=3)


def test_xca_matches_restated_equation():
    # Eq. (3)-(4): per head A = softmax(K_hat^T Q_hat / tau) over channels, output V A (tokens x d)
    torch.manual_seed(0)
    xca = XCA(16, num_heads=2).eval()
    with torch.no_grad():
        xca.temperature.copy_(torch.tensor([0.5, 2.0]).view(2, 1, 1))
        x = torch.randn(2, 7, 16)
        q, k, v = xca.qkv(x).reshape(2, 7, 3, 2, 8).permute(2, 0, 3, 1, 4)  # (B, heads, N, d)
        q_hat, k_hat = F.normalize(q, dim=2), F.normalize(k, dim=2)  # unit norm over the N tokens
        attn = (q_hat.transpose(-2, -1) @ k_hat * xca.temperature).softmax(-1)  # (B, heads, d, d)
        out = (attn @ v.transpose(-2, -1)).permute(0, 3, 1, 2).reshape(2, 7, 16)
        assert_rel_close(xca(x), xca.proj(out), what="XCA vs Eq. (3)-(4)")


def test_forward_backward_other_size(x64):
    torch.manual_seed(0)
    check_forward_backward(xcit_tiny_12_p16_224(num_classes=4, drop_path_rate=0.05), x64, 4)


def test_features_class_token_first(model, x64):
    with torch.no_grad():
        assert model.forward_features(x64).shape == (2, 1 + 16, 192)
    assert model.default_input_size == 224


def test_num_classes_and_in_chans():
    check_token_head_variants(xcit_tiny_12_p16_224, torch.zeros(2, 3, 64, 64), 192)


def test_fx_matches_eager_two_sizes(model, x64):
    check_fx_matches_eager(model, torch.randn(1, 3, 224, 224))
    check_fx_matches_eager(model, x64)


def test_deterministic_init():
    check_deterministic_init(XCiT, embed_dim=32, depth=1, num_heads=2, cls_attn_layers=1)


def test_inject_after_patch_embed_and_token_error(model, x64):
    check_injection(model, "ConvPatchEmbed", x64[:1], expected_sites=1)
    check_token_site_error(model, "ClassAttentionBlock", x64[:1])


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(embed_dim=36, num_heads=4), "embed_dim must be a multiple of 8"),
        (dict(num_heads=5), "num_heads must divide dim=192"),
        (dict(cls_attn_layers=0), "cls_attn_layers must be an integer >= 1"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        XCiT(**kwargs)
