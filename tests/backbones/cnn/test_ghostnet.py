"""GhostNet 1.0x (Han et al., CVPR 2020) against timm's ghostnet_100."""
import math

import pytest
import timm
import torch

from ..builders import model_fixture, random_batch
from ..contract import (
    ContractCase, check_bad_load_raises, check_load_matches, check_mobile_bad_arguments, contract_tests,
)
from plugattn.attention.se import SELayer
from plugattn.backbones.cnn.ghostnet import GhostBottleneck, GhostModule, GhostNet, ghostnet_100

# timm.create_model("ghostnet_100"): 5,182,508 parameters (measured)
TIMM_PARAMS = 5_182_508

CASE = ContractCase(
    ghostnet_100, "ghostnet_100", "cnn", created_as="ghostnet_100", model_class=GhostNet,
    train_on_fixture=True,
    reference_params=TIMM_PARAMS, heads_with_weights=True,
    # num_classes=0 keeps conv_head + ReLU: 1280-d pre-logits; the feature map has 960 channels
    num_features=1280, feature_shape=(2, 960, 2, 2),
    init_factory=ghostnet_100, init_kwargs=dict(num_classes=10),
    inject_sites=(("GhostBottleneck", 16),),  # Table 1
)
model = model_fixture(CASE)
test_contract = contract_tests(CASE)


@pytest.fixture(scope="module")
def imagenet_model():
    torch.manual_seed(0)
    return ghostnet_100()


def test_timm_weights_give_timm_outputs(imagenet_model):
    torch.manual_seed(0)
    reference = timm.create_model("ghostnet_100", pretrained=False)
    check_load_matches(imagenet_model, reference, "timm", random_batch(64, batch=1))


def test_mismatched_weights_are_refused(imagenet_model):
    check_bad_load_raises(imagenet_model, timm.create_model("ghostnet_100", pretrained=False).state_dict(), "timm")


def test_bad_arguments():
    check_mobile_bad_arguments(ghostnet_100)
    with pytest.raises(ValueError, match="ratio"):
        GhostModule(16, 16, ratio=1)
    with pytest.raises(ValueError, match="se_ratio"):
        GhostBottleneck(16, 48, 24, se_ratio=2.0)


def test_ghost_module_follows_eq_2_and_3():
    # m = ceil(n / s) intrinsic maps from the 1x1 conv, the rest are cheap depthwise images of them
    module = GhostModule(16, 27, ratio=3).eval()
    intrinsic = math.ceil(27 / 3)
    assert module.primary_conv[0].out_channels == intrinsic
    assert module.cheap_operation[0].groups == intrinsic and module.cheap_operation[0].out_channels == 2 * intrinsic
    x = torch.randn(2, 16, 6, 6)
    with torch.no_grad():
        out = module(x)
        assert out.shape == (2, 27, 6, 6)
        # the first m output channels are exactly the primary conv's intrinsic maps
        assert torch.equal(out[:, :intrinsic], module.primary_conv(x))


def test_se_uses_hard_sigmoid_and_width_rounded_to_four(model):
    se_layers = [m for m in model.modules() if isinstance(m, SELayer)]
    assert len(se_layers) == 7  # Table 1: SE in 7 bottlenecks
    for se in se_layers:
        assert se.gate_name == "hardsigmoid" and se.act_name == "relu"
        assert se.hidden_channels % 4 == 0 and abs(se.hidden_channels - se.channel / 4) <= 2
