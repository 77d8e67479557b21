"""ConvNeXt-T/S/B (plugattn/backbones/cnn/convnext.py)."""
import pytest
import timm
import torch
import torchvision

from ..builders import model_fixture, on_meta, x64
from ..contract import (
    ContractCase, check_head_variants, check_random_reference_loads, check_reference_layout, contract_tests,
)
from plugattn.backbones import create_backbone, list_backbones, load_external_weights
from plugattn.backbones.cnn.convnext import (
    ConvNeXt,
    ConvNeXtBlock,
    convnext_base,
    convnext_small,
    convnext_tiny,
)
from plugattn.backbones.layers import LayerNorm2d

# torchvision's published counts, re-measured by building torchvision's (and timm's) models
REFERENCE_PARAMS = {"convnext_tiny": 28_589_128, "convnext_small": 50_223_688, "convnext_base": 88_591_464}
FACTORIES = {"convnext_tiny": convnext_tiny, "convnext_small": convnext_small, "convnext_base": convnext_base}


def tiny_config(**kwargs):
    return ConvNeXt(depths=(1, 1, 2, 1), dims=(16, 32, 48, 64), **kwargs)


CASE = ContractCase(
    convnext_tiny, "convnext_tiny", "cnn", num_features=768, map_features=True, feature_hw=(2, 2),
    train_on_fixture=True,
    feature_shape=(2, 768, 2, 2), init_factory=tiny_config, init_kwargs=dict(num_classes=3),
    inject_sites=(("ConvNeXtBlock", 18),),
)
model = model_fixture(CASE)
test_contract = contract_tests(CASE)


@pytest.mark.parametrize("name", sorted(REFERENCE_PARAMS))
def test_param_count_and_keys_match_torchvision(name):
    check_reference_layout(FACTORIES[name], getattr(torchvision.models, name), REFERENCE_PARAMS[name], registry_name=name)


def test_layer_scale_and_stochastic_depth_as_torchvision(model):
    blocks = [m for m in model.modules() if isinstance(m, ConvNeXtBlock)]
    assert len(blocks) == 18
    assert all(torch.all(b.layer_scale == 1e-6) for b in blocks)
    # linear rule over the 18 blocks: rate_i = 0.1 * i / 17
    rates = [b.drop_path.drop_prob for b in blocks]
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.1)
    assert rates[9] == pytest.approx(0.1 * 9 / 17)
    assert on_meta(convnext_base).features[7][2].drop_path.drop_prob == pytest.approx(0.5)
    assert on_meta(convnext_small).features[7][2].drop_path.drop_prob == pytest.approx(0.4)


def test_layer_norm_2d_normalises_channels_per_pixel():
    norm = LayerNorm2d(6, eps=1e-6)
    x = torch.randn(2, 6, 3, 4)
    y = norm(x)
    torch.testing.assert_close(y.mean(1), torch.zeros(2, 3, 4), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.var(1, unbiased=False), torch.ones(2, 3, 4), atol=1e-4, rtol=0)


def test_num_classes_and_in_chans_base():
    check_head_variants(convnext_base, torch.zeros(2, 3, 64, 64), 1024, feature_hw=(2, 2))


def test_init_truncated_normal_std_002():
    torch.manual_seed(0)
    model = tiny_config()
    weight = model.features[5][0].block[3].weight.detach()
    assert abs(weight.std().item() - 0.02) < 0.002 and weight.abs().max() <= 2.0
    assert float(model.features[5][0].block[3].bias.detach().abs().max()) == 0.0


@pytest.mark.parametrize("name", sorted(REFERENCE_PARAMS))
def test_torchvision_weights_load_and_match(name, x64):
    check_random_reference_loads(FACTORIES[name], getattr(torchvision.models, name), "torchvision", x64[:1])


def test_timm_weights_load_and_match(x64):
    timm_convnext = lambda: timm.create_model("convnext_tiny", pretrained=False)  # noqa: E731
    check_random_reference_loads(convnext_tiny, timm_convnext, "timm", x64[:1], seed=4)


def test_mismatched_weights_raise():
    with pytest.raises(ValueError, match=r"mis-shaped keys: features\.0\.0\.weight"):
        theirs = on_meta(torchvision.models.convnext_base).state_dict()
        load_external_weights(on_meta(convnext_tiny), theirs, "torchvision")


def test_registry():
    assert {"convnext_tiny", "convnext_small", "convnext_base"} <= set(list_backbones("cnn"))
    model = create_backbone("convnext_tiny", num_classes=0)
    assert isinstance(model, ConvNeXt) and isinstance(model.classifier[2], torch.nn.Identity)


def test_bad_arguments():
    with pytest.raises(ValueError, match="depths and dims must have 4 entries"):
        ConvNeXt(depths=(1, 1, 1), dims=(8, 16, 32))
    with pytest.raises(ValueError, match="dims must be an integer >= 1"):
        ConvNeXt(depths=(1, 1, 1, 1), dims=(8, 16, 0, 32))
    with pytest.raises(ValueError, match="drop_path_rate must be in"):
        tiny_config(drop_path_rate=1.0)
    with pytest.raises(ValueError, match="layer_scale must be > 0"):
        tiny_config(layer_scale=0.0)
