"""The README's first example, exactly as written there (default 1x3x224x224 example input)."""
import pytest


def test_readme_first_example():
    torchvision = pytest.importorskip("torchvision")
    resnet50 = torchvision.models.resnet50
    from plugattn import inject_attention, remove_attention

    model = inject_attention(resnet50(), "eca", after="bottleneck")
    report = model.injection_report
    assert len(report.sites) == 16 and report.params_added == 86 and report.mode == "fx"
    assert report.sites[0].shape == (1, 256, 56, 56)  # the default input is 1x3x224x224
    assert type(remove_attention(model)).__name__ == "ResNet"
