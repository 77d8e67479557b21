"""WindowAttention2d (Liu et al., Swin Transformer, ICCV 2021) as a residual plug-in: generic checks,
parameter count from the paper's layout, bias-table shape, window locality of W-MSA, the near-identity
start, registry names and argument errors."""
import pytest
import torch
from .attention_checks import ALL_CHECKS, perturb_parameters

import timm
import torchvision

from plugattn.attention import WindowAttention2d, create_attention
from plugattn.attention.window import default_num_heads, map_window
from plugattn.inject import inject_attention
from plugattn.parameters import count_parameters
from plugattn.testing import assert_rel_close, relative_error

CHANNELS = 8  # small enough for gradcheck over every parameter


@pytest.mark.parametrize("config", [dict(num_heads=2, window_size=3, shift_size=1), dict(num_heads=2, window_size=2)],
                         ids=["shifted_w3", "unshifted_w2"])
@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda c: c.__name__)
def test_generic_checks(check, config):
    check(lambda: WindowAttention2d(CHANNELS, **config), CHANNELS)


def test_parameter_count_at_64_channels():
    # heads = 64 // 32 = 2, M = 7: LayerNorm (2C) + qkv (C·3C + 3C) + proj (C·C + C)
    # + bias table ((2M-1)^2 · heads) + layer scale gamma (C)
    c, heads, m = 64, 2, 7
    expected = 2 * c + (c * 3 * c + 3 * c) + (c * c + c) + (2 * m - 1) ** 2 * heads + c
    assert count_parameters(WindowAttention2d(64)) == expected == 17_170
    assert count_parameters(WindowAttention2d(64, qkv_bias=False)) == expected - 3 * c


@pytest.mark.parametrize("channels,heads,window", [(64, None, 7), (96, 3, 7), (48, 4, 5), (16, 1, 1)])
def test_bias_table_shape(channels, heads, window):
    module = WindowAttention2d(channels, num_heads=heads, window_size=window)
    expected_heads = heads or default_num_heads(channels)
    assert module.num_heads == expected_heads
    assert module.relative_position_bias_table.shape == ((2 * window - 1) ** 2, expected_heads)


def test_unshifted_token_only_sees_its_window():
    # W-MSA: windows are independent, so changing a token in another window leaves a window's outputs alone
    module = perturb_parameters(WindowAttention2d(CHANNELS, num_heads=2, window_size=4)).eval()
    x = torch.randn(1, CHANNELS, 8, 8)
    x_changed = x.clone()
    x_changed[0, :, 5, 6] += torch.randn(CHANNELS)  # window (1, 1); not a constant, which LayerNorm removes
    y, y_changed = module(x), module(x_changed)
    assert torch.equal(y[:, :, :4, :], y_changed[:, :, :4, :])  # windows (0, 0) and (0, 1)
    assert torch.equal(y[:, :, 4:, :4], y_changed[:, :, 4:, :4])  # window (1, 0)
    assert not torch.allclose(y[:, :, 4, 4], y_changed[:, :, 4, 4])  # a neighbour in the same window


def test_shifted_windows_connect_neighbours_and_mask_wrapped_regions():
    # SW-MSA, M = 4, s = 2 on 8x8: the map is rolled by -2, so pixel p sits at shifted p - 2 (mod 8)
    module = perturb_parameters(WindowAttention2d(CHANNELS, num_heads=2, window_size=4, shift_size=2)).eval()
    x = torch.randn(1, CHANNELS, 8, 8)

    def change_at(row, col):
        x_changed = x.clone()
        x_changed[0, :, row, col] += torch.randn(CHANNELS)  # not a constant, which LayerNorm removes
        return module(x), module(x_changed)

    # pixels (3, 3) and (4, 4): shifted (1, 1) and (2, 2), one window, one region -> connected
    y, y_changed = change_at(4, 4)
    assert not torch.allclose(y[:, :, 3, 3], y_changed[:, :, 3, 3])
    # pixel (6, 6) -> shifted (4, 4), region 4 of the bottom-right window; pixel (7, 7) -> shifted (5, 5),
    # same region: connected; pixel (0, 0) wrapped round to shifted (6, 6), region 8: masked (-100)
    y, y_changed = change_at(6, 6)
    assert not torch.allclose(y[:, :, 7, 7], y_changed[:, :, 7, 7])
    assert torch.allclose(y[:, :, 0, 0], y_changed[:, :, 0, 0], rtol=0, atol=1e-6)


def test_starts_near_identity():
    module = WindowAttention2d(32, window_size=4, shift_size=2)
    assert torch.all(module.gamma == 1e-4)
    x = torch.randn(2, 32, 9, 10)
    assert (module(x) - x).abs().max() < 1e-2


def test_matches_explicit_pre_norm_residual_form():
    # y = x + gamma * proj(WMSA(LN(x))), WMSA from the kernel's reference
    from plugattn.kernels import window_attention_reference

    module = perturb_parameters(WindowAttention2d(CHANNELS, num_heads=2, window_size=3, shift_size=1)).eval()
    x = torch.randn(2, CHANNELS, 5, 7)
    tokens = torch.nn.functional.layer_norm(x.permute(0, 2, 3, 1), (CHANNELS,), module.norm.weight, module.norm.bias)
    qkv = tokens @ module.qkv.weight.T + module.qkv.bias  # (B, H, W, 3C)
    attended = window_attention_reference(qkv, module.relative_position_bias_table, 3, 1, 4 ** -0.5)
    expected = x + (module.gamma * (attended @ module.proj.weight.T + module.proj.bias)).permute(0, 3, 1, 2)
    assert_rel_close(module(x), expected)


@pytest.mark.parametrize("name", ["window", "swin", "WINDOW_attention"])
def test_create_by_registry_name(name):
    module = create_attention(name, 64, window_size=5)
    assert isinstance(module, WindowAttention2d) and module.window_size == 5


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(channels=0), "channels must be an integer >= 1, got 0"),
        (dict(channels=64, num_heads=3), "num_heads must divide channels=64, got num_heads=3"),
        (dict(channels=64, num_heads=0), "num_heads must be an integer >= 1, got 0"),
        (dict(channels=64, window_size=0), "window_size must be an integer >= 1, got 0"),
        (dict(channels=64, window_size=7, shift_size=7), r"shift_size must be in \[0, window_size=7\), got 7"),
        (dict(channels=64, shift_size=-1), "shift_size must be an integer >= 0, got -1"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        WindowAttention2d(**kwargs)


def test_wrong_input_channels():
    with pytest.raises(ValueError, match="built for 64 channels"):
        WindowAttention2d(64)(torch.randn(1, 32, 7, 7))


def test_default_heads_divide_every_width():
    # issue 17: max(1, C // 32) failed 76 of the 128 multiples of 8 up to 1024
    for channels in range(8, 1025, 8):
        heads = default_num_heads(channels)
        assert channels % heads == 0
        head_dim = channels // heads
        assert all(abs(channels // h - 32) >= abs(head_dim - 32) for h in range(1, channels + 1) if channels % h == 0)
    assert [default_num_heads(c) for c in (96, 192, 768, 112, 104, 16, 48)] == [3, 6, 24, 4, 4, 1, 2]
    assert default_num_heads(252) == 7  # head dims 28 and 36 tie: the larger head dim
    assert WindowAttention2d(112).num_heads == 4


def test_mobilenet_v3_injection_with_112_channels():
    model = torchvision.models.mobilenet_v3_large()
    model = inject_attention(model, "window", after="InvertedResidual")
    widths = {m.channels for m in model.modules() if isinstance(m, WindowAttention2d)}
    assert 112 in widths
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 64, 64)).shape == (1, 1000)


def _timm_block(module: WindowAttention2d, height: int, width: int, shift: int):
    """timm's SwinTransformerBlock for an H×W map with the plug-in's weights, MLP half zeroed: its output
    is x + W-MSA(LN(x)), the plug-in's with gamma = 1 (timm fits the window to the map itself)."""
    m, heads = module.window_size, module.num_heads
    block = timm.models.swin_transformer.SwinTransformerBlock(
        module.channels, (height, width), num_heads=heads, window_size=m, shift_size=shift,
        qkv_bias=module.qkv.bias is not None).eval()
    window = block.window_size[0]
    block.norm1.load_state_dict(module.norm.state_dict())
    block.attn.qkv.load_state_dict(module.qkv.state_dict())
    block.attn.proj.load_state_dict(module.proj.state_dict())
    with torch.no_grad():
        for dr in range(-(window - 1), window):
            for dc in range(-(window - 1), window):
                block.attn.relative_position_bias_table[(dr + window - 1) * (2 * window - 1) + dc + window - 1] = \
                    module.relative_position_bias_table[(dr + m - 1) * (2 * m - 1) + dc + m - 1]
        block.mlp.fc2.weight.zero_()
        block.mlp.fc2.bias.zero_()
    return block


@pytest.mark.parametrize("side", [1, 4, 5, 7])
def test_small_maps_shrink_the_window_and_drop_the_shift(side):
    # issue 17: a map no larger than the window is one window of the map's size, unshifted (official Swin, timm)
    module = perturb_parameters(WindowAttention2d(16, num_heads=2, window_size=7, shift_size=3)).eval()
    with torch.no_grad():
        module.gamma.fill_(1.0)
    assert map_window(side, side, 7, 3) == (side, 0)
    x = torch.randn(2, 16, side, side)
    expected = _timm_block(module, side, side, 3)(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    assert_rel_close(module(x), expected)


@pytest.mark.parametrize("qkv_bias", [False, True])
def test_padded_tokens_follow_the_documented_convention(qkv_bias):
    # 9x9 map, window 7, shift 3: padded to 14x14. Padded tokens have q = k = v = 0 here; timm pads
    # before the qkv projection, so they agree without a qkv bias and differ (documented) with one.
    torch.manual_seed(1)
    module = perturb_parameters(WindowAttention2d(16, num_heads=2, window_size=7, shift_size=3,
                                                  qkv_bias=qkv_bias)).eval()
    with torch.no_grad():
        module.gamma.fill_(1.0)
        if qkv_bias:
            module.qkv.bias.normal_(0.0, 1.0)
    x = torch.randn(2, 16, 9, 9)
    expected = _timm_block(module, 9, 9, 3)(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    if qkv_bias:
        assert relative_error(module(x), expected) > 1e-3
    else:
        assert_rel_close(module(x), expected)
