"""CvT-13 (plugattn/backbones/vit/cvt.py)."""
import pytest
import torch

from ..builders import model_fixture, on_meta, x64
from ..contract import ContractCase, contract_tests
from plugattn.backbones.vit.cvt import ConvAttention, CvT, cvt_13
from plugattn.parameters import count_parameters
from plugattn.testing import assert_rel_close

CASE = ContractCase(
    cvt_13, "cvt_13", "vit", num_features=384, created_as="cvt_13",
    params=19_997_480,  # paper / HF: 20.0M (the registry's reference)
    fx_sizes=(224,), init_factory=CvT, init_kwargs=dict(dims=(8, 16, 32), depths=(1, 1, 1), heads=(1, 2, 4)),
    inject_sites=(("ConvProjection", 3 * 13),), token_blocks=("CvTBlock",),
)
model = model_fixture(CASE)
test_contract = contract_tests(CASE)


def test_stage_shapes_and_class_token_only_in_last_stage(model):
    with torch.no_grad():
        x = torch.randn(1, 3, 224, 224)
        shapes = []
        for stage in model.stages:
            x, cls_token = stage(x)
            shapes.append((tuple(x.shape), None if cls_token is None else tuple(cls_token.shape)))
    assert shapes == [((1, 64, 56, 56), None), ((1, 192, 28, 28), None), ((1, 384, 14, 14), (1, 1, 384))]


def test_conv_attention_matches_restated_projection():
    # Section 3.2: Q from a stride-1, K/V from stride-2 depthwise conv + BN; class token skips the convs
    torch.manual_seed(0)
    attn = ConvAttention(16, num_heads=2).eval()
    x = torch.randn(2, 1 + 36, 16)
    with torch.no_grad():
        x_map = x[:, 1:].transpose(1, 2).reshape(2, 16, 6, 6)

        def project(conv_proj, linear):
            tokens = conv_proj(x_map).flatten(2).transpose(1, 2)
            return linear(torch.cat([x[:, :1], tokens], 1)).reshape(2, -1, 2, 8).transpose(1, 2)

        q, k, v = project(attn.conv_proj_q, attn.proj_q), project(attn.conv_proj_k, attn.proj_k), \
            project(attn.conv_proj_v, attn.proj_v)
        assert q.shape[2] == 37 and k.shape[2] == 1 + 9  # K, V squeezed to 3 x 3
        weights = (q @ k.transpose(-2, -1) * 16 ** -0.5).softmax(-1)
        expected = attn.proj((weights @ v).transpose(1, 2).reshape(2, 37, 16))
        assert_rel_close(attn(x, 6, 6, with_cls_token=True), expected, what="convolutional attention")


def test_features_are_the_last_stage_map(x64):
    with torch.no_grad():
        assert on_meta(cvt_13).forward_features(x64.to("meta")).shape == (2, 384, 4, 4)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(heads=(1, 3, 5)), "num_heads must divide dim=384"),
        (dict(depths=(1, 2)), "3 entries"),
        (dict(drop_path_rate=2.0), "drop_path_rate"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CvT(**kwargs)


def test_mlp_activation_is_quick_gelu_as_the_official_code(model):
    # official microsoft/CvT get_cls_model builds the model with act_layer=QuickGELU: x * sigmoid(1.702 x)
    from plugattn.backbones.layers import QuickGELU
    activations = [block.mlp.act for stage in model.stages for block in stage.blocks]
    assert len(activations) == 13 and all(isinstance(act, QuickGELU) for act in activations)
    x = torch.randn(64)
    assert torch.equal(activations[0](x), x * torch.sigmoid(1.702 * x))
    exact = CvT(dims=(8, 16, 32), depths=(1, 1, 1), heads=(1, 2, 4), act="gelu")
    assert isinstance(exact.stages[0].blocks[0].mlp.act, torch.nn.GELU)
    assert count_parameters(on_meta(cvt_13)) == 19_997_480  # no parameters change
