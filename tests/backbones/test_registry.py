"""The backbone registry as a whole: every registered model builds by name, is sized as its cited
reference says, and names, families and errors behave."""
import pytest
import torch

import plugattn
from plugattn.backbones import BACKBONES, create_backbone, list_backbones
from plugattn.parameters import count_parameters

ALL_NAMES = list_backbones()


def build_on_meta(name):
    with torch.device("meta"):
        return create_backbone(name)


def test_every_family_is_populated():
    assert len(list_backbones("cnn")) >= 15
    assert len(list_backbones("vit")) >= 16
    assert len(list_backbones("mlp")) >= 9
    assert sorted(list_backbones("cnn") + list_backbones("vit") + list_backbones("mlp")) == ALL_NAMES


@pytest.mark.parametrize("name", ALL_NAMES)
def test_parameter_count_matches_cited_reference(name):
    """Within 0.5% of the registered reference count; where the paper only gives a rounded figure
    (``params_rounded_to``), the count must round to it."""
    info = BACKBONES.get(name).info
    assert info.get("paper") and info.get("year"), f"{name} cites no paper"
    reference = info["params"]
    params = count_parameters(build_on_meta(name))
    rounding = info.get("params_rounded_to")
    if rounding:
        assert round(params / rounding) * rounding == reference, f"{name}: {params:,} does not round to {reference:,}"
    else:
        assert abs(params - reference) <= 0.005 * reference, f"{name}: {params:,} vs reference {reference:,}"


@pytest.mark.parametrize("name", ALL_NAMES)
def test_contract_attributes(name):
    model = build_on_meta(name)
    assert model.default_input_size in (32, 160, 224, 256)
    assert callable(getattr(model, "forward_features", None))


def test_create_backbone_is_reexported_and_case_insensitive():
    assert plugattn.create_backbone is create_backbone
    model = plugattn.create_backbone("ResNet18", num_classes=3).eval()
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 3)


def test_num_classes_none_keeps_the_model_default():
    with torch.device("meta"):
        cifar = create_backbone("wide_resnet28_10")
        imagenet = create_backbone("resnet18")
    assert cifar.num_classes == 10 and imagenet.num_classes == 1000


def test_unknown_name_suggests_close_matches():
    with pytest.raises(ValueError, match=r"unknown backbone 'resnet5'.*did you mean.*'resnet50'"):
        create_backbone("resnet5")


def test_bad_family_and_num_classes():
    with pytest.raises(ValueError, match=r"family must be one of .*got 'transformer'"):
        list_backbones("transformer")
    with pytest.raises(ValueError, match=r"num_classes must be an integer >= 0, got -1"):
        create_backbone("resnet18", num_classes=-1)
