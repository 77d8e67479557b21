"""Channel inference by one example run with temporary hooks: what it accepts and how it fails
(items 10 and 14 of issue 14, item 6 of issue 13)."""
import warnings

import pytest
import torch

from .inject_models import RarelyTakenHost
from plugattn.backbones.registry import create_backbone
from plugattn.inject import inject_attention

S = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(6))
torchvision = pytest.importorskip("torchvision")


def test_matched_module_not_reached_is_an_error_naming_it():
    with pytest.raises(ValueError, match=r"matched rare, which the example input never reached.*unreached='warn'"):
        inject_attention(RarelyTakenHost(), "eca", after="ResidualBlock", example_input=S)


def test_unreached_warn_injects_where_it_reached_and_reports_the_rest():
    with pytest.warns(UserWarning, match="matched rare, which the example input never reached"):
        injected = inject_attention(RarelyTakenHost(), "eca", after="ResidualBlock", example_input=S, unreached="warn")
    report = injected.injection_report
    assert [s.site for s in report.sites] == ["common"]
    assert report.skipped == [("rare", "not reached by the example input")]


def test_hooks_of_the_example_run_are_removed():
    injected = inject_attention(RarelyTakenHost(), "eca", after="name:common", example_input=S)
    hooks = {n: (len(m._forward_hooks), len(m._forward_pre_hooks)) for n, m in injected.named_modules()}
    assert hooks.pop("common") == (1, 0)  # only plugattn's attention hook
    assert set(hooks.values()) == {(0, 0)}


def test_a_list_example_input_is_one_argument_faster_rcnn():
    # item 14: [img] used to be unpacked into img
    model = torchvision.models.detection.fasterrcnn_mobilenet_v3_large_320_fpn(weights=None, weights_backbone=None)
    image = torch.rand(3, 96, 128, generator=torch.Generator().manual_seed(0))
    injected = inject_attention(model.eval(), "eca", after="InvertedResidual", example_input=[image]).eval()
    assert len(injected.injection_report.sites) == 15  # MobileNetV3-Large: 15 inverted residual blocks
    detections = injected([image])
    assert isinstance(detections, list) and set(detections[0]) == {"boxes", "labels", "scores"}


def test_default_example_input_is_the_backbones_own_size():
    # issue 13 item 6: mobilevit_s needs maps divisible by 64 (default_input_size 256), not 224
    model = create_backbone("mobilevit_s")
    injected = inject_attention(model, "eca", after="MV2Block")
    assert injected.injection_report.sites[0].shape[-2:] == (128, 128)  # the stride-2 stem on 256x256


def test_an_input_the_model_cannot_take_names_the_size_it_needs():
    with pytest.raises(ValueError) as info:
        inject_attention(create_backbone("mobilevit_s"), "eca", after="MV2Block", example_input=torch.randn(1, 3, 224, 224))
    message = str(info.value)
    assert message.startswith("running example_input (1×3×224×224) through MobileViT failed: ValueError: ")
    assert "multiples of 64" in message and "its default size is 3×256×256" in message
    assert "\n" not in message


def test_default_size_failure_says_no_example_input_was_given():
    class NeedsSmall(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 1)

        def forward(self, x):
            if x.shape[-1] != 32:
                raise ValueError(f"NeedsSmall takes 32x32 inputs, got {x.shape[-1]}")
            return self.conv(x)

    with pytest.raises(ValueError, match=r"no example_input was given, so the model's own default size 3×224×224 was used"):
        inject_attention(NeedsSmall(), "eca", after="Conv2d")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        inject_attention(NeedsSmall(), "eca", after="Conv2d", example_input=torch.randn(1, 3, 32, 32))
