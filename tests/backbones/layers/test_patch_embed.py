"""The one PatchEmbed: output layouts, norm on / off, overlapping and padded variants, a given projection,
and its argument errors."""
from functools import partial

import pytest
import torch
import torch.nn as nn

from plugattn.backbones.layers import LAYOUTS, LayerNorm2d, PatchEmbed


@pytest.mark.parametrize("layout, shape", [("nchw", (2, 8, 4, 4)), ("nhwc", (2, 4, 4, 8)), ("tokens", (2, 16, 8))])
def test_layouts_hold_the_same_numbers(layout, shape):
    torch.manual_seed(0)
    reference = PatchEmbed(3, 8, 4)
    embed = PatchEmbed(3, 8, 4, layout=layout)
    embed.load_state_dict(reference.state_dict())
    x = torch.randn(2, 3, 16, 16)
    out = embed(x)
    assert out.shape == shape
    if layout == "nhwc":
        out = out.permute(0, 3, 1, 2)
    elif layout == "tokens":
        out = out.transpose(1, 2).reshape(2, 8, 4, 4)  # (B, h*w, C) -> (B, C, h, w), row-major positions
    assert torch.equal(out, reference(x))


def test_without_norm_there_is_only_the_projection():
    embed = PatchEmbed(3, 8, 4)
    assert isinstance(embed.norm, nn.Identity)
    assert list(embed.state_dict()) == ["proj.weight", "proj.bias"]
    conv = embed.proj
    assert (conv.kernel_size, conv.stride, conv.padding) == ((4, 4), (4, 4), (0, 0))


def test_norm_on_a_map_and_on_channels_last_agree():
    """LayerNorm2d on the NCHW map and nn.LayerNorm on the NHWC output normalise the same numbers."""
    torch.manual_seed(0)
    on_map = PatchEmbed(3, 8, 4, norm_layer=LayerNorm2d)
    channels_last = PatchEmbed(3, 8, 4, norm_layer=nn.LayerNorm, layout="nhwc")
    channels_last.load_state_dict(on_map.state_dict())
    assert list(on_map.state_dict()) == ["proj.weight", "proj.bias", "norm.weight", "norm.bias"]
    x = torch.randn(2, 3, 16, 16)
    out = on_map(x)
    assert torch.equal(channels_last(x).permute(0, 3, 1, 2), out)
    assert out.mean(1).abs().max() < 1e-5  # every position normalised over its channels


def test_group_norm_as_norm_layer():
    embed = PatchEmbed(3, 8, 4, norm_layer=partial(nn.GroupNorm, 1))
    assert isinstance(embed.norm, nn.GroupNorm) and embed.norm.num_groups == 1
    assert embed(torch.randn(1, 3, 8, 8)).shape == (1, 8, 2, 2)


def test_overlapping_patches():
    embed = PatchEmbed(3, 8, 7, stride=4, padding=2)
    assert embed(torch.randn(1, 3, 32, 32)).shape == (1, 8, 8, 8)


def test_pad_input_pads_bottom_right_to_the_stride():
    torch.manual_seed(0)
    embed = PatchEmbed(3, 8, 4, pad_input=True)
    x = torch.randn(1, 3, 30, 29)
    out = embed(x)
    assert out.shape == (1, 8, 8, 8)
    padded = torch.zeros(1, 3, 32, 32)
    padded[:, :, :30, :29] = x
    assert torch.equal(out, embed.proj(padded))


def test_given_projection():
    stem = nn.Sequential(nn.Conv2d(3, 4, 3, 2, 1), nn.GELU(), nn.Conv2d(4, 8, 3, 2, 1))
    embed = PatchEmbed(3, 8, proj=stem, norm_layer=nn.BatchNorm2d)
    assert embed.proj is stem
    assert list(embed.state_dict())[:4] == ["proj.0.weight", "proj.0.bias", "proj.2.weight", "proj.2.bias"]
    assert embed(torch.randn(2, 3, 16, 16)).shape == (2, 8, 4, 4)


def test_traces_with_torch_fx():
    embed = PatchEmbed(3, 8, 4, norm_layer=nn.LayerNorm, layout="tokens", pad_input=True)
    traced = torch.fx.symbolic_trace(embed)
    x = torch.randn(1, 3, 14, 15)
    assert torch.equal(traced(x), embed(x))


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(layout="nwhc"), ValueError, ["layout", "nwhc", "nchw", "nhwc", "tokens"]),
    (dict(), ValueError, ["exactly one of patch_size", "proj", "patch_size=None"]),
    (dict(patch_size=4, proj=nn.Identity()), ValueError, ["exactly one of patch_size", "patch_size=4"]),
    (dict(proj=nn.Identity(), stride=2), ValueError, ["stride=2", "leave them unset"]),
    (dict(proj=nn.Identity(), pad_input=True), ValueError, ["pad_input=True"]),
    (dict(proj="conv"), TypeError, ["proj must be an nn.Module", "str"]),
    (dict(patch_size=0), ValueError, ["patch_size", "0"]),
    (dict(patch_size=4, stride=0), ValueError, ["stride", "0"]),
    (dict(patch_size=4, padding=-1), ValueError, ["padding", "-1"]),
    (dict(patch_size=4, norm_layer="layernorm"), TypeError, ["norm_layer", "'layernorm'"]),
])
def test_bad_arguments_name_the_argument_and_value(kwargs, error, words):
    with pytest.raises(error) as info:
        PatchEmbed(3, 8, **kwargs)
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize("name, args", [("in_chans", (0, 8, 4)), ("embed_dim", (3, 2.5, 4))])
def test_bad_widths(name, args):
    with pytest.raises(ValueError, match=name):
        PatchEmbed(*args)


def test_layouts_listed():
    assert LAYOUTS == ("nchw", "nhwc", "tokens")
