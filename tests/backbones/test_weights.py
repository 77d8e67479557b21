"""load_external_weights and its key-mapping helpers (plugattn/backbones/weights.py)."""
import pytest
import torch
import torch.nn as nn

from plugattn.backbones import create_backbone, load_external_weights
from plugattn.backbones.weights import pair_keys_in_order, remap_keys
from plugattn.testing import assert_rel_close


def randomise(model: nn.Module) -> nn.Module:
    """Seeded values in every parameter and BN statistic, so a dropped or swapped tensor shows."""
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point():
                values = torch.randn(tensor.shape, generator=generator) * 0.1
                tensor.copy_(values.abs() + 0.5 if name.endswith("running_var") else values)
    return model.eval()


def test_torchvision_mnasnet1_0_loads_into_mnasnet_b1_and_outputs_match():
    torchvision = pytest.importorskip("torchvision")
    reference = randomise(torchvision.models.mnasnet1_0())
    ours = load_external_weights(create_backbone("mnasnet_b1"), reference.state_dict(), "torchvision").eval()
    x = torch.randn(2, 3, 64, 64)
    assert_rel_close(ours(x), reference(x))


def test_pairing_by_position_refuses_another_architecture():
    torchvision = pytest.importorskip("torchvision")
    with pytest.raises(ValueError, match="cannot pair keys by position: 314 tensors given, the model has"):
        load_external_weights(create_backbone("mnasnet_a1"), torchvision.models.mnasnet1_0().state_dict(), "torchvision")
    theirs = nn.Sequential(nn.Conv2d(1, 2, 1), nn.Conv2d(2, 3, 1)).state_dict()
    with pytest.raises(ValueError, match=r"0.weight \(2, 1, 1, 1\) meets 0.weight \(3, 1, 1, 1\)"):
        pair_keys_in_order(theirs, nn.Sequential(nn.Conv2d(1, 3, 1), nn.Conv2d(3, 2, 1)))


def test_mismatched_keys_are_listed_and_bad_source_refused():
    model = nn.Sequential(nn.Conv2d(1, 2, 1))
    state = {"0.weight": torch.zeros(2, 1, 1, 1), "extra": torch.zeros(1)}
    with pytest.raises(ValueError, match=r"missing keys: 0.bias; unexpected keys: extra"):
        load_external_weights(model, state, "timm")
    with pytest.raises(ValueError, match=r"source must be one of 'torchvision', 'timm', 'official', got 'tf'"):
        load_external_weights(model, model.state_dict(), "tf")


def test_remap_keys_applies_every_rule_in_order():
    renamed = remap_keys({"features.0.weight": torch.ones(1)}, [(r"^features\.", "stem."), (r"^stem\.0", "stem.conv")])
    assert list(renamed) == ["stem.conv.weight"]
