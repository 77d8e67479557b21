"""MobileNetV1 (Howard et al., 2017) against timm's mobilenetv1_100."""
import pytest
import timm
import torch

from ..builders import model_fixture, on_meta, random_batch
from ..contract import (
    ContractCase, check_bad_load_raises, check_load_matches, check_mobile_bad_arguments, contract_tests,
)
from plugattn.backbones import create_backbone
from plugattn.backbones.cnn.mobilenetv1 import DepthwiseSeparableConv, MobileNetV1, mobilenetv1_100
from plugattn.parameters import count_parameters

# timm.create_model("mobilenetv1_100"): 4,231,976 parameters (measured); paper Table 8: 4.2M
TIMM_PARAMS = 4_231_976

CASE = ContractCase(
    mobilenetv1_100, "mobilenetv1_100", "cnn", num_features=1024, created_as="mobilenetv1_100",
    train_on_fixture=True,
    model_class=MobileNetV1, reference_params=TIMM_PARAMS, heads_with_weights=True, feature_shape=(2, 1024, 2, 2),
    init_factory=mobilenetv1_100, init_kwargs=dict(num_classes=10), inject_sites=(("DepthwiseSeparableConv", 13),),
)
model = model_fixture(CASE)
test_contract = contract_tests(CASE)


def table_1_param_count(num_classes: int = 1000) -> int:
    """Parameters of the paper's Table 1 written out: conv + BN (2 per channel) per layer."""
    total = 3 * 3 * 3 * 32 + 2 * 32  # stem
    widths = [32, 64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024]
    for c_in, c_out in zip(widths[:-1], widths[1:]):
        total += 3 * 3 * c_in + 2 * c_in  # depthwise + BN
        total += c_in * c_out + 2 * c_out  # pointwise + BN
    return total + 1024 * num_classes + num_classes  # FC


def test_param_count_matches_table_1():
    count = count_parameters(on_meta(mobilenetv1_100))
    assert count == table_1_param_count()
    assert round(count / 1e6, 1) == 4.2


def test_registry_alias():
    assert type(create_backbone("mobilenet_v1")).__name__ == "MobileNetV1"


def test_timm_weights_give_timm_outputs():
    torch.manual_seed(0)
    reference = timm.create_model("mobilenetv1_100", pretrained=False)
    # timm (like TF-slim) uses ReLU6 where the paper says ReLU
    check_load_matches(mobilenetv1_100(act="relu6"), reference, "timm", random_batch(64, batch=1))


def test_mismatched_weights_are_refused():
    state = timm.create_model("mobilenetv1_100", pretrained=False).state_dict()
    check_bad_load_raises(mobilenetv1_100(), state, "timm")


def test_bad_arguments():
    check_mobile_bad_arguments(mobilenetv1_100)
    with pytest.raises(ValueError, match="act"):
        mobilenetv1_100(act="relu7")
    with pytest.raises(ValueError, match="stride"):
        DepthwiseSeparableConv(8, 8, stride=4)


def test_separable_conv_is_depthwise_then_pointwise():
    block = DepthwiseSeparableConv(32, 64)
    assert block.conv_dw.groups == 32 and block.conv_dw.kernel_size == (3, 3)
    assert block.conv_pw.kernel_size == (1, 1) and block.conv_pw.groups == 1
