"""Shift-ViT-T (Wang et al., AAAI 2022): official config, paper parameter count, shift operation."""
import pytest
import torch

from .backbone_checks import (
    check_deterministic_init, check_forward_backward, check_fx_matches_eager, check_heads, check_injection,
    check_param_count, check_registered, random_batch,
)
from plugattn.backbones.shiftvit import ShiftViT, ShiftViTBlock, shift_channels, shiftvit_tiny

# Paper Table 4: Shift-T 28.5M parameters (rounded to 0.1M)
PAPER_PARAMS = 28_500_000


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return shiftvit_tiny(num_classes=10)


def test_param_count_matches_the_paper():
    check_param_count(shiftvit_tiny(), PAPER_PARAMS)
    check_registered("shiftvit_tiny", "vit", model_class=ShiftViT, params=PAPER_PARAMS)
    # closed form of the official shiftvit_r2_tiny config (C=96, depths 6/8/18/6, MLP ratio 2)
    widths, depths = (96, 192, 384, 768), (6, 8, 18, 6)
    blocks = sum(d * (2 * c + (2 * c * c + 2 * c) + (2 * c * c + c)) for c, d in zip(widths, depths))
    merging = sum(2 * c + 8 * c * c for c in widths[:3])
    expected = blocks + merging + (48 * 96 + 96 + 2 * 96) + 2 * 768 + (768 * 1000 + 1000)
    assert sum(p.numel() for p in shiftvit_tiny().parameters()) == expected


def test_forward_backward(model):
    check_forward_backward(model, random_batch(64), 10)


def test_heads_features_and_default_size():
    check_heads(shiftvit_tiny, 768, (768, 2, 2), size=64, default_input_size=224)


def test_fx_trace_equals_eager(model):
    check_fx_matches_eager(model, random_batch(64, batch=1))


def test_init_is_deterministic():
    check_deterministic_init(shiftvit_tiny, num_classes=10)


def test_shift_matches_the_papers_definition():
    # independent restatement with in-place writes into zeros (the official pseudo-code, Alg. 1)
    x = torch.randn(2, 24, 5, 6)
    g = 24 // 12
    expected = torch.zeros_like(x)
    expected[:, 0:g, :, :-1] = x[:, 0:g, :, 1:]
    expected[:, g:2 * g, :, 1:] = x[:, g:2 * g, :, :-1]
    expected[:, 2 * g:3 * g, :-1, :] = x[:, 2 * g:3 * g, 1:, :]
    expected[:, 3 * g:4 * g, 1:, :] = x[:, 3 * g:4 * g, :-1, :]
    expected[:, 4 * g:] = x[:, 4 * g:]
    assert torch.equal(shift_channels(x, g), expected)


def test_block_is_the_shift_when_the_mlp_is_zero():
    block = ShiftViTBlock(24).eval()
    torch.nn.init.zeros_(block.mlp.fc2.weight)
    torch.nn.init.zeros_(block.mlp.fc2.bias)
    x = torch.randn(1, 24, 4, 4)
    assert torch.equal(block(x), shift_channels(x, 2))


def test_inject_eca_after_every_block(model):
    check_injection(model, "ShiftViTBlock", random_batch(64, batch=1), expected_sites=6 + 8 + 18 + 6)


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_classes"):
        shiftvit_tiny(num_classes=-1)
    with pytest.raises(ValueError, match="n_div"):
        ShiftViTBlock(8, n_div=12)
