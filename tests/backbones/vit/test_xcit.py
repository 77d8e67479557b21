"""XCiT-T12/16 (plugattn/backbones/vit/xcit.py)."""
import pytest
import torch
import torch.nn.functional as F

from ..builders import model_fixture, x64
from ..contract import ContractCase, check_timm_outputs_match, contract_tests
from plugattn.backbones.vit.xcit import XCA, XCiT, xcit_tiny_12_p16_224
from plugattn.testing import assert_rel_close

CASE = ContractCase(
    xcit_tiny_12_p16_224, "xcit_tiny_12_p16_224", "vit", num_features=192, created_as="xcit_t12",
    params=6_716_272, timm_name="xcit_tiny_12_p16_224",  # timm xcit_tiny_12_p16_224, re-measured by the contract test
    train_kwargs=dict(drop_path_rate=0.05), fx_sizes=(224,),
    init_factory=XCiT, init_kwargs=dict(embed_dim=32, depth=1, num_heads=2, cls_attn_layers=1),
    inject_sites=(("ConvPatchEmbed", 1),), token_blocks=("ClassAttentionBlock",),
)
model = model_fixture(CASE)
test_contract = contract_tests(CASE)


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


def test_features_class_token_first(model, x64):
    with torch.no_grad():
        assert model.forward_features(x64).shape == (2, 1 + 16, 192)
    assert model.default_input_size == 224


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
