"""Shift-ViT-T (Wang et al., AAAI 2022): official config, paper parameter count, shift operation."""
import pytest
import torch

from ..builders import model_fixture, on_meta
from ..contract import ContractCase, contract_tests
from plugattn.backbones.vit.shiftvit import ShiftViT, ShiftViTBlock, shift_channels, shiftvit_tiny
from plugattn.parameters import count_parameters

# Paper Table 4: Shift-T 28.5M parameters (rounded to 0.1M)
PAPER_PARAMS = 28_500_000

CASE = ContractCase(
    shiftvit_tiny, "shiftvit_tiny", "vit", num_features=768, created_as="shiftvit_tiny", model_class=ShiftViT,
    train_on_fixture=True,
    reference_params=PAPER_PARAMS, heads_with_weights=True, feature_shape=(2, 768, 2, 2),
    init_factory=shiftvit_tiny, init_kwargs=dict(num_classes=10),
    inject_sites=(("ShiftViTBlock", 6 + 8 + 18 + 6),),
)
model = model_fixture(CASE)
test_contract = contract_tests(CASE)


def test_param_count_is_the_official_config():
    # closed form of the official shiftvit_r2_tiny config (C=96, depths 6/8/18/6, MLP ratio 2)
    widths, depths = (96, 192, 384, 768), (6, 8, 18, 6)
    blocks = sum(d * (2 * c + (2 * c * c + 2 * c) + (2 * c * c + c)) for c, d in zip(widths, depths))
    merging = sum(2 * c + 8 * c * c for c in widths[:3])
    expected = blocks + merging + (48 * 96 + 96 + 2 * 96) + 2 * 768 + (768 * 1000 + 1000)
    assert count_parameters(on_meta(shiftvit_tiny)) == expected


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


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_classes"):
        shiftvit_tiny(num_classes=-1)
    with pytest.raises(ValueError, match="n_div"):
        ShiftViTBlock(8, n_div=12)
