"""Every bad call raises a clear error naming what is wrong."""
import pytest
import torch
import torch.nn as nn

from .inject_models import TinyResNet, TupleNet
from plugattn.inject import get_injection_report, inject_attention, remove_attention

X = torch.randn(1, 3, 16, 16)


def test_site_output_not_a_feature_map(resnet50, image32):
    with pytest.raises(ValueError, match=r"site 'fc' \(Linear, after\): .*\(B, C, H, W\).*found shape \(1, 1000\)"):
        inject_attention(resnet50, "eca", after="Linear", example_input=image32)


def test_site_output_a_tuple():
    with pytest.raises(ValueError, match=r"site 'pair' \(TupleBlock, after\).*found a tuple of 2"):
        inject_attention(TupleNet(), "eca", after="TupleBlock", example_input=X)


def test_branch_without_residual_names_the_block():
    with pytest.raises(ValueError, match=r"block 'stem' \(PlainBlock\) has no residual addition"):
        inject_attention(TinyResNet(), "eca", branch="PlainBlock", example_input=X)


def test_branch_no_residual_error_names_the_first_block_without_skip():
    torchvision = pytest.importorskip("torchvision")
    with pytest.raises(ValueError, match=r"block 'features.1' \(InvertedResidual\) has no residual addition.*no_residual='error'"):
        inject_attention(torchvision.models.mobilenet_v2(), "eca", branch="InvertedResidual",
                         example_input=torch.randn(1, 3, 32, 32), no_residual="error")


def test_module_called_twice(resnet50, image32):
    # torchvision's Bottleneck calls its single self.relu three times
    with pytest.raises(ValueError, match=r"site 'layer1.0.relu' \(ReLU, after\) is called 3 times"):
        inject_attention(resnet50, "eca", after="layer1.0.relu", example_input=image32)


def test_matched_but_never_called():
    with pytest.raises(ValueError, match="matched unused, but the example input reached none of them"):
        inject_attention(TinyResNet(), "eca", after="name:unused", example_input=X)


def test_unknown_attention_name_suggests():
    with pytest.raises(ValueError, match="unknown attention 'ecaa'; did you mean 'eca'"):
        inject_attention(TinyResNet(), "ecaa", after="ResidualBlock")


def test_attention_not_callable():
    with pytest.raises(ValueError, match="attention must be a registry name.*got int 3"):
        inject_attention(TinyResNet(), 3, after="ResidualBlock")


def test_attention_changing_the_shape():
    with pytest.raises(ValueError, match=r"site 'block1' .*maps \(1, 8, 16, 16\) to \(1, 4, 16, 16\)"):
        inject_attention(TinyResNet(), lambda c: nn.Conv2d(c, 4, 1), after="ResidualBlock", example_input=X)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "give exactly one selector.*got none"),
        ({"after": "ResidualBlock", "before": "PlainBlock"}, "give exactly one selector.*got after, before"),
        ({"selector": "ResidualBlock", "where": "inside"}, "where must be one of 'after', 'before', 'branch', got 'inside'"),
        ({"before": "ResidualBlock", "where": "branch"}, "where='branch' contradicts before="),
        ({"before": "ResidualBlock", "where": "after"}, "where='after' contradicts before="),
        ({"after": "ResidualBlock", "mode": "trace"}, "mode must be one of 'auto', 'fx', 'hook', got 'trace'"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        inject_attention(TinyResNet(), "eca", **kwargs)


def test_model_not_a_module():
    with pytest.raises(ValueError, match="model must be an nn.Module, got function"):
        inject_attention(lambda x: x, "eca", after="conv")


def test_example_input_that_does_not_fit():
    with pytest.raises(ValueError, match=r"running example_input \(1×5×16×16\) through TinyResNet failed: "
                                         r"RuntimeError: .*3 channels.*its default size is 3×224×224"):
        inject_attention(TinyResNet(), "eca", after="ResidualBlock", example_input=torch.randn(1, 5, 16, 16))


def test_branch_twice_on_the_same_block():
    once = inject_attention(TinyResNet(), "eca", branch="ResidualBlock", example_input=X)
    with pytest.raises(ValueError, match="block1, block2 already carry branch attention"):
        inject_attention(once, "se", branch="ResidualBlock", example_input=X)


def test_plain_model_has_no_report():
    with pytest.raises(ValueError, match="carries no injection report"):
        get_injection_report(TinyResNet())
    with pytest.raises(ValueError, match="carries no injection report"):
        remove_attention(TinyResNet())
