"""EfficientNetV2-S (Tan & Le, ICML 2021) against torchvision."""
import pytest
import torch
import torchvision

from ..builders import model_fixture, random_batch
from ..contract import ContractCase, check_bad_load_raises, check_load_matches, contract_tests
from plugattn.backbones.cnn.efficientnet import EfficientNet
from plugattn.backbones.cnn.efficientnetv2 import FusedMBConv, efficientnet_v2_s
from plugattn.backbones.layers import MBConv

# torchvision.models.efficientnet_v2_s(weights=None): 21,458,488 parameters (measured)
TORCHVISION_PARAMS = 21_458_488
# Table 4: Fused-MBConv stages of 2, 4, 4 layers, MBConv stages of 6, 9, 15 layers
FUSED_LAYERS, MBCONV_LAYERS = 2 + 4 + 4, 6 + 9 + 15

CASE = ContractCase(
    efficientnet_v2_s, "efficientnet_v2_s", "cnn", num_features=1280, created_as="efficientnet_v2_s",
    train_on_fixture=True,
    model_class=EfficientNet, reference_params=TORCHVISION_PARAMS, heads_with_weights=True,
    feature_shape=(2, 1280, 2, 2), init_factory=efficientnet_v2_s, init_kwargs=dict(num_classes=10),
    inject_sites=(("FusedMBConv", FUSED_LAYERS),),
)
model = model_fixture(CASE)
test_contract = contract_tests(CASE)


@pytest.fixture(scope="module")
def imagenet_model():
    torch.manual_seed(0)
    return efficientnet_v2_s()


def test_block_types_follow_table_4(imagenet_model):
    assert sum(isinstance(m, FusedMBConv) for m in imagenet_model.modules()) == FUSED_LAYERS
    assert sum(isinstance(m, MBConv) for m in imagenet_model.modules()) == MBCONV_LAYERS
    # a Fused-MBConv with expansion 1 is a single 3x3 conv; with expansion 4, 3x3 conv + linear 1x1
    assert len(imagenet_model.features[1][0].block) == 1 and len(imagenet_model.features[2][0].block) == 2


def test_torchvision_weights_give_torchvision_outputs(imagenet_model):
    torch.manual_seed(0)
    reference = torchvision.models.efficientnet_v2_s(weights=None)
    check_load_matches(imagenet_model, reference, "torchvision", random_batch(64, batch=1))


def test_mismatched_weights_are_refused(imagenet_model):
    state = torchvision.models.efficientnet_v2_s(weights=None).state_dict()
    check_bad_load_raises(imagenet_model, state, "torchvision")


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
