"""EfficientNet-B0..B3 (Tan & Le, ICML 2019) against torchvision."""
import math

import pytest
import torch
import torchvision

from ..builders import model_fixture, on_meta, random_batch
from ..contract import (
    ContractCase, check_bad_load_raises, check_load_matches, check_mobile_bad_arguments, check_param_count,
    contract_tests,
)
from plugattn.attention.se import SELayer
from plugattn.backbones import BACKBONES, create_backbone
from plugattn.backbones.cnn.efficientnet import EfficientNet, efficientnet_b0
from plugattn.backbones.layers import MBConv

# parameters of torchvision.models.efficientnet_bX(weights=None), measured
TORCHVISION_PARAMS = {
    "efficientnet_b0": 5_288_548,
    "efficientnet_b1": 7_794_184,
    "efficientnet_b2": 9_109_994,
    "efficientnet_b3": 12_233_232,
}
# compound-scaling coefficients (width, depth) of the released models
SCALING = {"efficientnet_b0": (1.0, 1.0), "efficientnet_b1": (1.0, 1.1), "efficientnet_b2": (1.1, 1.2), "efficientnet_b3": (1.2, 1.4)}
B0_LAYERS = [1, 2, 2, 3, 3, 4, 1]  # Table 1
NAMES = sorted(TORCHVISION_PARAMS)

# B0's count is checked with the others below
CASE = ContractCase(
    efficientnet_b0, "efficientnet_b0", "cnn", num_features=1280, created_as="efficientnet_b0",
    train_on_fixture=True,
    model_class=EfficientNet, heads_with_weights=True, feature_shape=(2, 1280, 2, 2),
    init_factory=efficientnet_b0, init_kwargs=dict(num_classes=10), inject_sites=(("MBConv", sum(B0_LAYERS)),),
)
model = model_fixture(CASE)
test_contract = contract_tests(CASE)


@pytest.mark.parametrize("name", NAMES)
def test_param_count_matches_torchvision(name):
    check_param_count(on_meta(create_backbone, name=name), TORCHVISION_PARAMS[name])
    assert BACKBONES.get(name).info["params"] == TORCHVISION_PARAMS[name]


@pytest.mark.parametrize("name", NAMES)
def test_depth_follows_compound_scaling(name):
    # Eq. 3: every stage's layer count is ceil(d * layers_B0)
    _, depth = SCALING[name]
    stages = on_meta(create_backbone, name=name).features[1:-1]
    assert [len(stage) for stage in stages] == [math.ceil(depth * n) for n in B0_LAYERS]


def test_fx_trace_in_train_mode_keeps_stochastic_depth():
    model = efficientnet_b0(num_classes=10).train()
    traced = torch.fx.symbolic_trace(model)
    x = torch.randn(2, 3, 32, 32)
    torch.manual_seed(1)
    expected = model(x)
    torch.manual_seed(1)
    assert torch.allclose(traced(x), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_torchvision_weights_give_torchvision_outputs(name):
    torch.manual_seed(0)
    reference = getattr(torchvision.models, name)(weights=None)
    check_load_matches(create_backbone(name), reference, "torchvision", random_batch(64, batch=1))


def test_mismatched_weights_are_refused():
    check_bad_load_raises(efficientnet_b0(), torchvision.models.efficientnet_b0(weights=None).state_dict(), "torchvision")


def test_bad_arguments():
    check_mobile_bad_arguments(efficientnet_b0)
    with pytest.raises(ValueError, match="drop_path_rate"):
        efficientnet_b0(drop_path_rate=1.0)
    with pytest.raises(ValueError, match="depth_mult"):
        efficientnet_b0(depth_mult=-1.0)


def test_se_width_is_a_quarter_of_the_block_input():
    # Sec. 4 / MnasNet: SE ratio 0.25 of the block's input width, swish inside, sigmoid gate
    for block in efficientnet_b0().modules():
        if isinstance(block, MBConv):
            se = [m for m in block.modules() if isinstance(m, SELayer)]
            in_channels = block.block[0][0].in_channels
            assert len(se) == 1 and se[0].hidden_channels == max(1, in_channels // 4)
            assert se[0].act_name == "silu" and se[0].gate_name == "sigmoid"


def test_stochastic_depth_grows_linearly():
    rates = [b.stochastic_depth.drop_prob for b in efficientnet_b0(drop_path_rate=0.2).modules() if isinstance(b, MBConv)]
    assert rates == pytest.approx([0.2 * i / 16 for i in range(16)])
