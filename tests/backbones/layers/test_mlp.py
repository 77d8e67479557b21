"""The one Mlp (last dimension) and the one ConvMlp (1x1 convolutions on maps): shapes, names, norms on /
off, agreement with each other, argument errors."""
import pytest
import torch
import torch.nn as nn

from plugattn.backbones.layers import ConvMlp, Mlp, QuickGELU


def test_mlp_shapes_and_names():
    mlp = Mlp(8, 32)
    assert mlp(torch.randn(2, 5, 8)).shape == (2, 5, 8)
    assert list(mlp.state_dict()) == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    assert isinstance(mlp.act, nn.GELU)
    assert Mlp(8, 2, 24)(torch.randn(3, 8)).shape == (3, 24)


def test_mlp_is_fc2_act_fc1():
    torch.manual_seed(0)
    mlp = Mlp(6, 12, act="relu")
    x = torch.randn(4, 6)
    assert torch.equal(mlp(x), mlp.fc2(torch.relu(mlp.fc1(x))))


def test_mlp_options():
    assert Mlp(4, 8, bias=False).fc1.bias is None
    assert isinstance(Mlp(4, 8, act="quick_gelu").act, QuickGELU)
    assert isinstance(Mlp(4, 8, act=nn.SiLU).act, nn.SiLU)
    assert isinstance(Mlp(4, 8, act=None).act, nn.Identity)


def test_conv_mlp_without_norm_matches_mlp_on_channels_last():
    torch.manual_seed(0)
    conv_mlp, mlp = ConvMlp(8, 16, 4), Mlp(8, 16, 4)
    assert isinstance(conv_mlp.norm1, nn.Identity) and isinstance(conv_mlp.norm2, nn.Identity)
    assert list(conv_mlp.state_dict()) == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    for name in ("fc1", "fc2"):
        getattr(mlp, name).weight.data.copy_(getattr(conv_mlp, name).weight.data.flatten(1))
        getattr(mlp, name).bias.data.copy_(getattr(conv_mlp, name).bias.data)
    x = torch.randn(2, 8, 3, 5)
    out = conv_mlp(x)
    assert out.shape == (2, 4, 3, 5)
    torch.testing.assert_close(out, mlp(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2))


def test_conv_mlp_with_norm():
    mlp = ConvMlp(8, 32, norm_layer=nn.BatchNorm2d).eval()
    assert (mlp.norm1.num_features, mlp.norm2.num_features) == (32, 8)
    # EfficientFormer's Meta4D order: fc1, norm1, (act), fc2, norm2
    assert [name for name, _ in mlp.named_parameters()] == [
        "fc1.weight", "fc1.bias", "norm1.weight", "norm1.bias", "fc2.weight", "fc2.bias", "norm2.weight", "norm2.bias",
    ]
    x = torch.randn(2, 8, 4, 4)
    expected = mlp.norm2(mlp.fc2(mlp.act(mlp.norm1(mlp.fc1(x)))))
    assert torch.equal(mlp(x), expected)


@pytest.mark.parametrize("cls", [Mlp, ConvMlp])
@pytest.mark.parametrize("args, name, value", [
    ((0, 8), "in_features", "0"), ((8, 0), "hidden_features", "0"), ((8, 4, -2), "out_features", "-2"),
    ((8, 2.5), "hidden_features", "2.5"),
])
def test_bad_widths_name_the_argument(cls, args, name, value):
    with pytest.raises(ValueError) as info:
        cls(*args)
    assert name in str(info.value) and value in str(info.value)


@pytest.mark.parametrize("cls", [Mlp, ConvMlp])
def test_bad_activation_lists_the_names(cls):
    with pytest.raises(ValueError) as info:
        cls(8, 16, act="gleu")
    assert "act" in str(info.value) and "gleu" in str(info.value) and "gelu" in str(info.value)


def test_conv_mlp_bad_norm_layer():
    with pytest.raises(TypeError, match="norm_layer"):
        ConvMlp(8, 16, norm_layer="batchnorm")
