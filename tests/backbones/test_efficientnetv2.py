"""EfficientNetV2-S (Tan & Le, ICML 2021) against torchvision."""
import pytest
import torch
import torchvision

from .backbone_checks import (
    check_backbone_contract, check_bad_load_raises, check_forward_backward, check_injection, check_load_matches,
    check_param_count, random_batch,
)
from plugattn.backbones import BACKBONES, create_backbone
from plugattn.backbones.efficientnet import MBConv
from plugattn.backbones.efficientnetv2 import FusedMBConv, efficientnet_v2_s

# torchvision.models.efficientnet_v2_s(weights=None): 21,458,488 parameters (measured)
TORCHVISION_PARAMS = 21_458_488
# Table 4: Fused-MBConv stages of 2, 4, 4 layers, MBConv stages of 6, 9, 15 layers
FUSED_LAYERS, MBCONV_LAYERS = 2 + 4 + 4, 6 + 9 + 15


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return efficientnet_v2_s()


def test_param_count_matches_torchvision(model):
    check_param_count(model, TORCHVISION_PARAMS)
    assert BACKBONES.get("efficientnet_v2_s").info["params"] == TORCHVISION_PARAMS


def test_block_types_follow_table_4(model):
    assert sum(isinstance(m, FusedMBConv) for m in model.modules()) == FUSED_LAYERS
    assert sum(isinstance(m, MBConv) for m in model.modules()) == MBCONV_LAYERS
    # a Fused-MBConv with expansion 1 is a single 3x3 conv; with expansion 4, 3x3 conv + linear 1x1
    assert len(model.features[1][0].block) == 1 and len(model.features[2][0].block) == 2


def test_backbone_contract():
    check_backbone_contract(efficientnet_v2_s, pooled_width=1280, feature_width=1280)


def test_forward_backward():
    check_forward_backward(create_backbone("efficientnet_v2_s", num_classes=10), random_batch(64), 10)


def test_inject_eca_after_every_fused_mbconv():
    check_injection(efficientnet_v2_s(num_classes=10), "FusedMBConv", random_batch(64, batch=1), expected_sites=FUSED_LAYERS)


def test_torchvision_weights_give_torchvision_outputs(model):
    torch.manual_seed(0)
    check_load_matches(model, torchvision.models.efficientnet_v2_s(weights=None), "torchvision", random_batch(64, batch=1))


def test_mismatched_weights_are_refused(model):
    check_bad_load_raises(model, torchvision.models.efficientnet_v2_s(weights=None).state_dict(), "torchvision")


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_classes"):
        efficientnet_v2_s(num_classes=-1)
    with pytest.raises(ValueError, match="stride"):
        FusedMBConv(24, 24, stride=3)
    with pytest.raises(ValueError, match="drop_path_rate"):
        FusedMBConv(24, 24, drop_path_rate=-0.1)


def test_fused_block_shortcut_is_identity_when_branch_is_zero():
    block = FusedMBConv(24, 24, expand_ratio=4).eval()
    torch.nn.init.zeros_(block.block[-1][1].weight)  # last BN scale 0: branch outputs 0
    x = torch.randn(2, 24, 8, 8)
    assert torch.equal(block(x), x)
