"""Untraceable models: fx with failing modules kept as leaves, and the forward-hook path."""
import pytest
import torch

from .inject_models import DataDependentNet, GatedSubmoduleNet, TinyResNet
from plugattn.inject import UntraceableError, inject_attention, remove_attention
from plugattn.testing import assert_rel_close

X = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(3))


def test_fx_keeps_an_untraceable_submodule_as_an_opaque_call():
    model = GatedSubmoduleNet().eval()
    with pytest.raises(torch.fx.proxy.TraceError):
        torch.fx.symbolic_trace(model)  # `if x.shape[-1] > 8` in gate
    injected = inject_attention(model, "eca", after="ResidualBlock", example_input=X[:1]).eval()
    report = injected.injection_report
    assert report.mode == "fx" and report.fallback_reason is None
    assert isinstance(injected, torch.fx.GraphModule)
    called = [n.target for n in injected.graph.nodes if n.op == "call_module"]
    assert "gate" in called and "gate.conv" not in called  # one opaque call, not traced into
    h = injected.block(injected.gate(injected.stem(X)))
    assert_rel_close(injected(X), injected.fc(injected.block.eca(h).mean(dim=(2, 3))))


def test_auto_falls_back_to_hooks_when_the_root_forward_is_untraceable():
    model = DataDependentNet().eval()
    injected = inject_attention(model, "eca", after="ResidualBlock", example_input=X[:1]).eval()
    report = injected.injection_report
    assert report.mode == "hook"
    assert "DataDependentNet itself is not traceable" in report.fallback_reason
    assert type(injected) is DataDependentNet
    assert [s.attention for s in report.sites] == ["block.eca"]
    # .forward() skips the module's hooks: the expected value is built from the bare modules
    h = injected.block.eca(injected.block.forward(injected.stem(X)))
    assert_rel_close(injected(X), injected.fc(injected.extra(h).mean(dim=(2, 3))))
    assert not torch.allclose(injected(X), model(X))
    assert_rel_close(remove_attention(injected)(X), model(X))


def test_hook_path_before():
    model = DataDependentNet().eval()
    injected = inject_attention(model, "eca", before="PlainBlock", example_input=X[:1]).eval()
    assert [(s.site, s.channels) for s in injected.injection_report.sites] == [("stem", 3), ("extra", 8)]
    h = injected.block(injected.stem.forward(injected.stem.eca(X)))  # .forward() skips the hooks
    assert_rel_close(injected(X), injected.fc(injected.extra.forward(injected.extra.eca(h)).mean(dim=(2, 3))))


def test_hook_path_branch_rewrites_the_block_only():
    model = DataDependentNet().eval()
    injected = inject_attention(model, "eca", branch="ResidualBlock", example_input=X[:1]).eval()
    assert injected.injection_report.mode == "hook"
    assert isinstance(injected.block, torch.fx.GraphModule) and type(injected.block).__name__ == "ResidualBlock"
    assert not torch.allclose(injected(X), model(X))
    assert_rel_close(remove_attention(injected)(X), model(X))


def test_explicit_hook_mode_matches_fx_mode():
    model = TinyResNet().eval()
    by_fx = inject_attention(model, "eca", after="ResidualBlock", example_input=X[:1], mode="fx").eval()
    by_hook = inject_attention(model, "eca", after="ResidualBlock", example_input=X[:1], mode="hook").eval()
    assert by_hook.injection_report.mode == "hook" and type(by_hook) is TinyResNet
    by_hook.load_state_dict(by_fx.state_dict())
    assert_rel_close(by_hook(X), by_fx(X))


def test_fx_mode_refuses_an_untraceable_root():
    with pytest.raises(UntraceableError, match="DataDependentNet itself is not traceable.*mode='hook'"):
        inject_attention(DataDependentNet(), "eca", after="ResidualBlock", example_input=X[:1], mode="fx")


def test_fx_mode_refuses_when_the_failing_module_contains_sites():
    with pytest.raises(UntraceableError, match="module 'gate' \\(ShapeGatedBlock\\), which contains sites, is not traceable"):
        inject_attention(GatedSubmoduleNet(), "eca", after="Conv2d", example_input=X[:1], mode="fx")


def test_auto_uses_hooks_when_the_failing_module_contains_sites():
    model = GatedSubmoduleNet().eval()
    injected = inject_attention(model, "eca", after="Conv2d", example_input=X[:1])
    report = injected.injection_report
    assert report.mode == "hook" and "'gate'" in report.fallback_reason
    assert [s.site for s in report.sites] == ["stem.conv", "gate.conv", "block.conv_a", "block.conv_b"]


def test_timm_mobilevit_s():
    timm = pytest.importorskip("timm")
    model = timm.create_model("mobilevit_s", pretrained=False).eval()
    x = torch.randn(1, 3, 64, 64)
    injected = inject_attention(model, "eca", after="BottleneckBlock", example_input=x).eval()
    report = injected.injection_report
    # the MobileViT blocks fold patches with `if` on shapes: they stay opaque calls
    assert report.mode == "fx"
    called = [n.target for n in injected.graph.nodes if n.op == "call_module"]
    assert {"stages.2.1", "stages.3.1", "stages.4.1"} <= set(called)
    assert len(report.sites) == 7  # stages 0-4 hold 1, 3, 1, 1, 1 inverted bottlenecks
    assert not torch.allclose(injected(x), model(x))
    hooked = inject_attention(model, "eca", after="MobileVitBlock", example_input=x, mode="hook").eval()
    assert [s.channels for s in hooked.injection_report.sites] == [96, 128, 160]
    assert_rel_close(remove_attention(hooked)(x), model(x))


def test_timm_tf_efficientnetv2_s_same_padding_convs_become_leaves():
    timm = pytest.importorskip("timm")
    model = timm.create_model("tf_efficientnetv2_s", pretrained=False).eval()
    x = torch.randn(1, 3, 64, 64)
    injected = inject_attention(model, "eca", after="EdgeResidual", example_input=x)
    report = injected.injection_report
    assert report.mode == "fx"
    assert "conv_stem" in [n.target for n in injected.graph.nodes if n.op == "call_module"]
    assert len(report.sites) == 8  # stages 1 and 2: 4 + 4 fused-MBConv blocks
