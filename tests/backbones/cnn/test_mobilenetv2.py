"""MobileNetV2 (Sandler et al., CVPR 2018) against torchvision's mobilenet_v2."""
import pytest
import torch
import torchvision

from ..builders import model_fixture, random_batch
from ..contract import (
    ContractCase, check_bad_load_raises, check_load_matches, check_mobile_bad_arguments, contract_tests,
)
from plugattn.backbones.cnn.mobilenetv2 import InvertedResidual, MobileNetV2, mobilenet_v2

# torchvision.models.mobilenet_v2(weights=None): 3,504,872 parameters (measured)
TORCHVISION_PARAMS = 3_504_872

CASE = ContractCase(
    mobilenet_v2, "mobilenet_v2", "cnn", num_features=1280, created_as="mobilenet_v2", model_class=MobileNetV2,
    train_on_fixture=True,
    reference_params=TORCHVISION_PARAMS, heads_with_weights=True, feature_shape=(2, 1280, 2, 2),
    init_factory=mobilenet_v2, init_kwargs=dict(num_classes=10),
    inject_sites=(("InvertedResidual", 17),),  # Table 2: 1 + 2 + 3 + 4 + 3 + 3 + 1 = 17 bottlenecks
)
model = model_fixture(CASE)
test_contract = contract_tests(CASE)


def test_torchvision_weights_give_torchvision_outputs():
    torch.manual_seed(0)
    check_load_matches(mobilenet_v2(), torchvision.models.mobilenet_v2(weights=None), "torchvision", random_batch(64, batch=1))


def test_mismatched_weights_are_refused():
    check_bad_load_raises(mobilenet_v2(), torchvision.models.mobilenet_v2(weights=None).state_dict(), "torchvision")


def test_bad_arguments():
    check_mobile_bad_arguments(mobilenet_v2)
    with pytest.raises(ValueError, match="stride"):
        InvertedResidual(16, 16, stride=3, expand_ratio=6)


def test_shortcut_only_where_the_shape_is_kept():
    # Sec. 3.3 / Table 1: with the linear projection zeroed the block is the identity (shortcut) ...
    block = InvertedResidual(24, 24, stride=1, expand_ratio=6).eval()
    torch.nn.init.zeros_(block.conv[-1].weight)
    x = torch.randn(2, 24, 8, 8)
    assert torch.equal(block(x), x)
    # ... while a stride-2 or width-changing block has no shortcut
    assert not InvertedResidual(24, 24, stride=2, expand_ratio=6).use_residual
    assert not InvertedResidual(24, 32, stride=1, expand_ratio=6).use_residual


def test_width_multiplier_rounds_to_multiples_of_eight():
    model = MobileNetV2(width_mult=0.5)
    widths = [m.out_channels for m in model.features]
    assert all(w % 8 == 0 for w in widths)
    assert widths[0] == 16 and widths[-1] == 1280  # 32 * 0.5, last conv kept at 1280 below 1.0x
