"""MOAT-0 (Yang et al., ICLR 2023): Table 1 config, MOAT block, relative-position attention, windows."""
import pytest
import torch

from ..builders import model_fixture, on_meta
from ..contract import ContractCase, contract_tests
from plugattn.backbones.vit.moat import MOAT, MBConvBlock, MOATAttention, MOATBlock, moat_0, relative_position_bias
from plugattn.parameters import count_parameters

PAPER_PARAMS = 27_800_000  # Table 1: MOAT-0 27.8M
SIZE = 64  # smallest size with every stage map >= 2x2 (global attention, tables resized)

CASE = ContractCase(
    moat_0, "moat_0", "vit", num_features=768, created_as="moat_0", model_class=MOAT,
    train_on_fixture=True,
    reference_params=PAPER_PARAMS, size=SIZE, heads_with_weights=True, feature_shape=(2, 768, 2, 2),
    # FX at 64: position tables resized to the 4x4 / 2x2 maps; at 224: tables used as built (14x14 / 7x7 maps)
    fx_sizes=(224,), init_factory=moat_0, init_kwargs=dict(num_classes=10),
    inject_sites=(("MOATBlock", 9),), token_blocks=("MOATAttention",),
)
model = model_fixture(CASE)
test_contract = contract_tests(CASE)


def mbconv_params(c_in: int, c_out: int, se: bool) -> int:
    """Sec. 3.1 MBConv: shortcut 1x1 conv (width change), pre-BN, 1x1 expand (x4) + BN, 3x3 dw + BN,
    SE (hidden c_out / 4, with biases), 1x1 shrink with bias."""
    inner = 4 * c_out
    shortcut = c_in * c_out + c_out if c_in != c_out else 0
    se_params = 2 * inner * (c_out // 4) + c_out // 4 + inner if se else 0
    return shortcut + 2 * c_in + c_in * inner + 2 * inner + 9 * inner + 2 * inner + se_params + inner * c_out + c_out


def moat_block_params(c_in: int, c_out: int, position_size: int) -> int:
    """MBConv without SE, LayerNorm, q/k/v/o with bias, one (2P-1)^2 table per head (head size 32)."""
    heads = c_out // 32
    return mbconv_params(c_in, c_out, se=False) + 2 * c_out + 4 * (c_out * c_out + c_out) + heads * (2 * position_size - 1) ** 2


def test_param_count_is_the_table_1_config():
    stem = (3 * 9 * 64 + 64) + 2 * 64 + (64 * 9 * 64 + 64)
    stage1 = mbconv_params(64, 96, True) + mbconv_params(96, 96, True)
    stage2 = mbconv_params(96, 192, True) + 2 * mbconv_params(192, 192, True)
    stage3 = moat_block_params(192, 384, 14) + 6 * moat_block_params(384, 384, 14)
    stage4 = moat_block_params(384, 768, 7) + moat_block_params(768, 768, 7)
    head = 2 * 768 + 768 * 1000 + 1000
    assert count_parameters(on_meta(moat_0)) == stem + stage1 + stage2 + stage3 + stage4 + head == 27_846_892


def test_relative_position_bias_matches_a_direct_statement():
    torch.manual_seed(0)
    table = torch.randn(2, 5, 7)  # heads 2, a 3x4 window: (2*3-1, 2*4-1)
    bias = relative_position_bias(table, 3, 4)
    positions = [(i, j) for i in range(3) for j in range(4)]
    for q, (i, j) in enumerate(positions):
        for k, (x, y) in enumerate(positions):
            assert torch.equal(bias[:, q, k], table[:, x - i + 2, y - j + 3])


def test_attention_matches_softmax_with_bias():
    torch.manual_seed(0)
    attn = MOATAttention(64, head_dim=32, position_size=3)
    torch.nn.init.normal_(attn.relative_position_embedding)  # a visible bias
    x = torch.randn(2, 9, 64)
    out = attn(x, 3, 3)
    q, k, v = (layer(x).reshape(2, 9, 2, 32).transpose(1, 2) for layer in (attn.q, attn.k, attn.v))
    bias = relative_position_bias(attn.relative_position_embedding, 3, 3)
    weights = torch.softmax(q @ k.transpose(-1, -2) / 32 ** 0.5 + bias, dim=-1)
    expected = attn.o((weights @ v).transpose(1, 2).reshape(2, 9, 64))
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_window_attention_attends_within_each_window():
    # a 4x4 map in 2x2 windows == the attention applied to each quadrant on its own
    torch.manual_seed(0)
    block = MOATBlock(64, 64, stride=1, position_size=2, window=(2, 2)).eval()
    x = torch.randn(1, 64, 4, 4)
    with torch.no_grad():
        out = block(x)
        mid = block.mbconv(x)
        for top in (0, 2):
            for left in (0, 2):
                quadrant = mid[:, :, top:top + 2, left:left + 2]
                tokens = block.attention_norm(quadrant.permute(0, 2, 3, 1).reshape(1, 4, 64))
                expected = quadrant + block.attention(tokens, 2, 2).reshape(1, 2, 2, 64).permute(0, 3, 1, 2)
                torch.testing.assert_close(out[:, :, top:top + 2, left:left + 2], expected, rtol=1e-5, atol=1e-5)


def test_windowed_model_equals_global_at_224(model):
    # with the classification window sizes, 224 inputs have one window per map: the same model
    windowed = moat_0(num_classes=10, window_sizes=((14, 14), (7, 7)))
    windowed.load_state_dict(model.state_dict())
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(windowed.eval()(x), model.eval()(x), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="does not tile into 14x14 attention windows"):
        windowed(torch.randn(1, 3, SIZE, SIZE))


def test_mbconv_downsamples_with_pooled_shortcut():
    block = MBConvBlock(8, 16, stride=2)
    assert [type(m).__name__ for m in block.shortcut] == ["AvgPool2d", "Conv2d"]
    assert block(torch.randn(1, 8, 7, 7)).shape == (1, 16, 4, 4)  # odd maps: TF "same" rounding up


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_classes"):
        moat_0(num_classes=-1)
    with pytest.raises(ValueError, match="window_sizes"):
        moat_0(window_sizes=(None,))
    with pytest.raises(ValueError, match="head_dim"):
        MOATAttention(48, head_dim=32)
    with pytest.raises(ValueError, match="stride"):
        MBConvBlock(8, 8, stride=3)
    with pytest.raises(ValueError, match="window"):
        MOATBlock(8, 8, window=(2,))
