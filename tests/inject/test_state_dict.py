"""The state-dict guarantee: original keys unchanged, only the new attention keys added."""
import torch

from .inject_models import TinyResNet
from plugattn.inject import inject_attention


def test_resnet50_checkpoint_loads_reporting_only_attention_keys(resnet50, image32):
    for where in ("after", "before", "branch"):
        injected = inject_attention(resnet50, "eca", where=where, selector="bottleneck", example_input=image32)
        original_keys = list(resnet50.state_dict())
        new_keys = [k for k in injected.state_dict() if k not in set(original_keys)]
        assert set(original_keys) <= set(injected.state_dict()), where
        assert new_keys == [f"{s.attention}.conv.weight" for s in injected.injection_report.sites]
        result = injected.load_state_dict(resnet50.state_dict(), strict=False)
        assert result.unexpected_keys == []
        assert sorted(result.missing_keys) == sorted(new_keys)
        for key, value in resnet50.state_dict().items():
            assert torch.equal(injected.state_dict()[key], value), key


def test_readable_names(resnet50, image32):
    injected = inject_attention(resnet50, "eca", after="bottleneck", example_input=image32)
    assert "layer1.0.eca.conv.weight" in injected.state_dict()
    assert injected.layer4[2].eca is injected.get_submodule("layer4.2.eca")


def test_unused_modules_buffers_and_containers_survive(image32):
    model = TinyResNet()
    injected = inject_attention(model, "eca", after="Conv2d", example_input=image32)
    assert {"unused.weight", "unused.bias", "scale"} <= set(injected.state_dict())
    assert type(injected.block2.shortcut).__name__ == "Sequential"  # not a bare nn.Module
    # the attention of shortcut.0 is its child, not a third layer of the Sequential
    assert injected.injection_report.sites[-1].attention == "block2.shortcut.0.eca"
    assert len(injected.block2.shortcut) == 2


def test_caller_model_is_never_modified(resnet50, image32):
    before = {k: v.clone() for k, v in resnet50.state_dict().items()}
    modules_before = [type(m) for m in resnet50.modules()]
    inject_attention(resnet50, "eca", branch="bottleneck", example_input=image32)
    assert [type(m) for m in resnet50.modules()] == modules_before
    assert all(torch.equal(before[k], v) for k, v in resnet50.state_dict().items())
    assert not hasattr(resnet50, "injection_report")
