"""One test per selector spelling, and the no-match error."""
import re

import pytest
import torch.nn as nn

from .inject_models import PlainBlock, ResidualBlock, TinyResNet
from plugattn.inject import inject_attention, resolve_selector

LAYER3 = [f"layer3.{i}" for i in range(6)]


def sites(model):
    return [s.site for s in model.injection_report.sites]


def test_class_name_is_case_insensitive(resnet50, image32):
    for spelling in ("bottleneck", "BOTTLENECK", "Bottleneck", "class:bottleneck"):
        injected = inject_attention(resnet50, "eca", after=spelling, example_input=image32)
        assert len(sites(injected)) == 16, spelling  # ResNet-50: 3 + 4 + 6 + 3 bottlenecks


def test_class_name_basicblock_on_resnet18(image32):
    torchvision = pytest.importorskip("torchvision")
    injected = inject_attention(torchvision.models.resnet18(), "eca", after="BasicBlock", example_input=image32)
    assert sites(injected) == [f"layer{l}.{i}" for l in range(1, 5) for i in range(2)]


def test_class_name_conv2d_matches_leaf_layers(image32):
    injected = inject_attention(TinyResNet(), "eca", after="Conv2d", example_input=image32)
    # stem.conv, block1 conv_a/conv_b, block2 conv_a/conv_b/shortcut.0
    assert sites(injected) == [
        "stem.conv", "block1.conv_a", "block1.conv_b", "block2.conv_a", "block2.conv_b", "block2.shortcut.0",
    ]
    assert [s.channels for s in injected.injection_report.sites] == [8, 8, 8, 16, 16, 16]


def test_type_selector(image32):
    injected = inject_attention(TinyResNet(), "eca", after=ResidualBlock, example_input=image32)
    assert sites(injected) == ["block1", "block2"]


def test_tuple_of_types_selector(image32):
    injected = inject_attention(TinyResNet(), "eca", after=(ResidualBlock, PlainBlock), example_input=image32)
    assert sites(injected) == ["stem", "block1", "block2"]


def test_glob_name_pattern_keeps_outermost(resnet50, image32):
    injected = inject_attention(resnet50, "eca", after="layer3.*", example_input=image32)
    assert sites(injected) == LAYER3  # not layer3.0.conv1 etc.: the blocks contain them
    assert [s.channels for s in injected.injection_report.sites] == [1024] * 6


def test_explicit_name_prefix_for_plain_names(resnet50, image32):
    injected = inject_attention(resnet50, "eca", after="name:layer2", example_input=image32)
    # layer2 is a Sequential: its attention goes to the root as layer2_eca
    assert sites(injected) == ["layer2"]
    assert injected.injection_report.sites[0].attention == "layer2_eca"


def test_regex_selector_string_and_compiled(resnet50, image32):
    for spec in (r"re:layer[34]\.\d+", re.compile(r"layer[34]\.\d+")):
        injected = inject_attention(resnet50, "eca", after=spec, example_input=image32)
        assert sites(injected) == LAYER3 + ["layer4.0", "layer4.1", "layer4.2"]


def test_predicate_selector(resnet50, image32):
    def last_block_of_each_stage(name, module):
        return name in ("layer1.2", "layer2.3", "layer3.5", "layer4.2")

    injected = inject_attention(resnet50, "eca", after=last_block_of_each_stage, example_input=image32)
    assert [s.channels for s in injected.injection_report.sites] == [256, 512, 1024, 2048]


def test_root_never_matches(image32):
    everything_but_linear = lambda name, m: not isinstance(m, nn.Linear)  # noqa: E731
    injected = inject_attention(TinyResNet(), "eca", after=everything_but_linear, example_input=image32)
    assert sites(injected) == ["stem", "block1", "block2"]  # outermost non-root modules only


def test_no_match_lists_classes_closest_first(resnet50):
    with pytest.raises(ValueError) as info:
        inject_attention(resnet50, "eca", after="bottlenek")
    message = str(info.value)
    assert "'bottlenek'" in message
    listed = message.split("closest first: ")[1]
    assert listed.startswith("Bottleneck (x16)")
    for name in ("Conv2d", "BatchNorm2d", "ReLU", "Sequential", "Linear"):
        assert name in listed


def test_no_match_for_type_and_predicate_and_pattern():
    for spec in (nn.LSTM, lambda n, m: False, "layer9.*", "re:nothing"):
        with pytest.raises(ValueError, match="matches no module of TinyResNet; module classes it contains"):
            inject_attention(TinyResNet(), "eca", after=spec)


@pytest.mark.parametrize("bad", [3, "", (nn.Conv2d, int), str, "re:("])
def test_bad_selector_raises(bad):
    with pytest.raises(ValueError, match="selector"):
        resolve_selector(bad)


def test_resolve_selector_kinds():
    assert resolve_selector("BasicBlock").kind == "class"
    assert resolve_selector("layer3.*").kind == "name"
    assert resolve_selector("name:stem").kind == "name"
    assert resolve_selector("re:layer\\d").kind == "regex"
    assert resolve_selector(nn.Conv2d).kind == "type"
    assert resolve_selector(lambda n, m: True).kind == "predicate"
