"""MobileNetV1 (Howard et al., 2017) against timm's mobilenetv1_100."""
import pytest
import timm
import torch

from .backbone_checks import (
    check_backbone_contract, check_bad_load_raises, check_forward_backward, check_injection, check_load_matches,
    check_mobile_bad_arguments, check_param_count, count_params, random_batch,
)
from plugattn.backbones import BACKBONES, create_backbone
from plugattn.backbones.mobilenetv1 import DepthwiseSeparableConv, mobilenetv1_100

# timm.create_model("mobilenetv1_100"): 4,231,976 parameters (measured); paper Table 8: 4.2M
TIMM_PARAMS = 4_231_976


def table_1_param_count(num_classes: int = 1000) -> int:
    """Parameters of the paper's Table 1 written out: conv + BN (2 per channel) per layer."""
    total = 3 * 3 * 3 * 32 + 2 * 32  # stem
    widths = [32, 64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024]
    for c_in, c_out in zip(widths[:-1], widths[1:]):
        total += 3 * 3 * c_in + 2 * c_in  # depthwise + BN
        total += c_in * c_out + 2 * c_out  # pointwise + BN
    return total + 1024 * num_classes + num_classes  # FC


def test_param_count_matches_timm_and_table_1():
    model = mobilenetv1_100()
    check_param_count(model, TIMM_PARAMS)
    assert count_params(model) == table_1_param_count()
    assert round(count_params(model) / 1e6, 1) == 4.2
    assert BACKBONES.get("mobilenetv1_100").info["params"] == TIMM_PARAMS


def test_registry_alias():
    assert type(create_backbone("mobilenet_v1")).__name__ == "MobileNetV1"


def test_backbone_contract():
    check_backbone_contract(mobilenetv1_100, pooled_width=1024, feature_width=1024)


def test_forward_backward():
    check_forward_backward(mobilenetv1_100(num_classes=10), random_batch(64), 10)


def test_inject_eca_after_every_separable_conv():
    check_injection(mobilenetv1_100(num_classes=10), "DepthwiseSeparableConv", random_batch(64, batch=1), expected_sites=13)


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
