"""Injection into the project's backbones, torchvision and timm models (random weights only)."""
import math

import pytest
import torch

from plugattn.inject import inject_attention, remove_attention
from plugattn.parameters import count_parameters
from plugattn.testing import assert_rel_close, relative_error

X = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(7))


def eca_params(channels):
    """ECA-Net Eq. 12 with gamma = 2, b = 1: k = |(log2 C + 1) / 2|_odd, one weight per tap."""
    t = int((math.log2(channels) + 1) / 2)
    return t if t % 2 else t + 1


def check(model, selector, where, channels):
    torch.manual_seed(0)
    for module in model.modules():  # timm zero-inits the last BN of each block: the branch would be 0
        if isinstance(module, torch.nn.BatchNorm2d):
            torch.nn.init.uniform_(module.weight, 0.5, 1.5)
    with torch.no_grad():
        for name, param in model.named_parameters():  # ConvNeXt's layer scale starts at 1e-6
            if name.endswith(("layer_scale", "gamma")):
                param.fill_(1.0)
    model.eval()
    injected = inject_attention(model, "eca", selector, where=where, example_input=X).eval()
    report = injected.injection_report
    assert [s.channels for s in report.sites] == channels
    added = count_parameters(injected) - count_parameters(model)
    assert added == report.params_added == sum(eca_params(c) for c in channels)
    assert relative_error(injected(X), model(X)) > 1e-3  # relative: random-init logits can be ~1e-10
    assert_rel_close(remove_attention(injected)(X), model(X))
    return injected


RESNET50 = [256] * 3 + [512] * 4 + [1024] * 6 + [2048] * 3
CONVNEXT_TINY = [96] * 3 + [192] * 3 + [384] * 9 + [768] * 3  # depths 3-3-9-3 (Liu et al. 2022)
MOBILENET_V2 = [16, 24, 24, 32, 32, 32, 64, 64, 64, 64, 96, 96, 96, 160, 160, 160, 320]  # Sandler et al. Table 2


def test_project_resnet50_and_res2net50():
    from plugattn.backbones.registry import create_backbone

    injected = check(create_backbone("resnet50"), "bottleneck", "branch", RESNET50)
    assert injected.injection_report.params_added == 86
    check(create_backbone("res2net50_26w_4s"), "Bottle2neck", "branch", RESNET50)  # inner additions ignored


def test_torchvision_resnet50(resnet50):
    check(resnet50, "bottleneck", "after", RESNET50)


def test_torchvision_mobilenet_v2():
    torchvision = pytest.importorskip("torchvision")
    check(torchvision.models.mobilenet_v2(), "InvertedResidual", "after", MOBILENET_V2)


@pytest.mark.slow
def test_torchvision_convnext_tiny():
    torchvision = pytest.importorskip("torchvision")
    check(torchvision.models.convnext_tiny(), "CNBlock", "branch", CONVNEXT_TINY)


def test_timm_resnet50():
    timm = pytest.importorskip("timm")
    injected = check(timm.create_model("resnet50", pretrained=False), "Bottleneck", "branch", RESNET50)
    assert injected.injection_report.params_added == 86


@pytest.mark.slow
def test_timm_convnext_tiny():
    timm = pytest.importorskip("timm")
    check(timm.create_model("convnext_tiny", pretrained=False), "ConvNeXtBlock", "branch", CONVNEXT_TINY)


def test_timm_efficientnet_b0():
    timm = pytest.importorskip("timm")
    # MBConv blocks of stages 2-7 (Tan & Le 2019, Table 1: 2, 2, 3, 3, 4, 1 layers)
    channels = [24] * 2 + [40] * 2 + [80] * 3 + [112] * 3 + [192] * 4 + [320]
    check(timm.create_model("efficientnet_b0", pretrained=False), "InvertedResidual", "after", channels)


def test_torchvision_densenet_block_iterating_its_children():
    """torchvision's _DenseBlock is an nn.ModuleDict whose forward runs every child: the attention
    must not be registered inside it (it would run twice), but on the nearest non-container owner."""
    torchvision = pytest.importorskip("torchvision")
    model = torchvision.models.densenet121()
    injected = check(model, "_DenseBlock", "after", [256, 512, 1024, 1024])
    assert [s.attention for s in injected.injection_report.sites] == [
        f"features_denseblock{i}_eca" for i in range(1, 5)
    ]
