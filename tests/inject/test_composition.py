"""Injections compose: a second call can select any module, including ones an earlier call
attached to (item 9), and hook order stays defined."""
import pytest
import torch

from .inject_models import TinyResNet
from plugattn.inject import inject_attention, remove_attention

X = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(8))
torchvision = pytest.importorskip("torchvision")


def test_eca_branch_then_se_after_the_stages():
    # item 9: the second call used to find layer1..4 "not called in forward" (traced through)
    model = torchvision.models.resnet18().eval()
    once = inject_attention(model, "eca", branch="BasicBlock", example_input=X[:1])
    twice = inject_attention(once, "se", after="layer*", example_input=X[:1]).eval()
    report = twice.injection_report
    assert [s.site for s in report.sites[8:]] == ["layer1", "layer2", "layer3", "layer4"]
    assert [s.attention for s in report.sites[8:]] == ["layer1_se", "layer2_se", "layer3_se", "layer4_se"]
    assert [s.channels for s in report.sites[8:]] == [64, 128, 256, 512]
    assert type(twice) is type(model)
    h = twice.maxpool(twice.relu(twice.bn1(twice.conv1(X))))
    for stage in ("layer1", "layer2", "layer3", "layer4"):
        h = getattr(twice, f"{stage}_se")(getattr(twice, stage).forward(h))  # ECA inside via the blocks' hooks
    expected = twice.fc(torch.flatten(twice.avgpool(h), 1))
    assert torch.allclose(twice(X), expected, rtol=1e-5, atol=1e-6)
    assert torch.equal(remove_attention(twice)(X), model(X))


def test_two_after_injections_on_one_module_apply_in_injection_order():
    model = TinyResNet().eval()
    first = inject_attention(model, lambda c: torch.nn.Identity(), after="name:block1", example_input=X[:1])
    log = []
    first.block1.register_forward_hook(lambda m, a, out: log.append(out.clone()))  # a user's hook
    second = inject_attention(first, "eca", after="name:block1", example_input=X[:1]).eval()
    block = second.block1
    hooks = list(block._forward_hooks.values())
    assert [type(h).__name__ for h in hooks[:2]] == ["AttentionAfterHook", "AttentionAfterHook"]
    assert [h.attention_name for h in hooks[:2]] == ["block1.attention", "block1.eca"]
    second(X)
    # the user's hook runs after both attentions: it sees the attended output
    assert torch.equal(log[-1], block.eca(block.forward(second.stem(X))))
