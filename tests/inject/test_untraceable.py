"""Models torch.fx cannot trace inject like any other (nothing outside a ``branch`` block is
traced), and the ``mode`` argument keeps a documented meaning."""
import pytest
import torch

from .inject_models import DataDependentNet, GatedSubmoduleNet, TinyResNet
from plugattn.inject import inject_attention, remove_attention
from plugattn.testing import assert_rel_close

X = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(3))


def test_untraceable_submodule_is_a_site_and_keeps_its_forward():
    model = GatedSubmoduleNet().eval()
    with pytest.raises(torch.fx.proxy.TraceError):
        torch.fx.symbolic_trace(model)  # `if x.shape[-1] > 8` in gate
    injected = inject_attention(model, "eca", after="Conv2d", example_input=X[:1]).eval()
    report = injected.injection_report
    assert report.mode == "hook" and report.fallback_reason is None
    assert type(injected) is GatedSubmoduleNet
    assert [s.site for s in report.sites] == ["stem.conv", "gate.conv", "block.conv_a", "block.conv_b"]
    assert all(s.attached == f"forward hook on {s.site}" for s in report.sites)
    assert_rel_close(remove_attention(injected)(X), model(X))


def test_data_dependent_root_forward():
    model = DataDependentNet().eval()
    injected = inject_attention(model, "eca", after="ResidualBlock", example_input=X[:1]).eval()
    assert type(injected) is DataDependentNet
    assert [s.attention for s in injected.injection_report.sites] == ["block.eca"]
    # .forward() skips the module's hooks: the expected value is built from the bare modules
    h = injected.block.eca(injected.block.forward(injected.stem(X)))
    assert_rel_close(injected(X), injected.fc(injected.extra(h).mean(dim=(2, 3))))
    assert not torch.allclose(injected(X), model(X))
    assert_rel_close(remove_attention(injected)(X), model(X))


def test_before_on_a_data_dependent_model():
    model = DataDependentNet().eval()
    injected = inject_attention(model, "eca", before="PlainBlock", example_input=X[:1]).eval()
    assert [(s.site, s.channels) for s in injected.injection_report.sites] == [("stem", 3), ("extra", 8)]
    h = injected.block(injected.stem.forward(injected.stem.eca(X)))  # .forward() skips the hooks
    assert_rel_close(injected(X), injected.fc(injected.extra.forward(injected.extra.eca(h)).mean(dim=(2, 3))))


def test_branch_traces_only_the_block():
    model = DataDependentNet().eval()
    injected = inject_attention(model, "eca", branch="ResidualBlock", example_input=X[:1]).eval()
    assert type(injected.block).__name__ == "ResidualBlock" and type(injected.block) is type(model.block)
    assert injected.injection_report.sites[0].hooked == "block.norm_b"
    assert not torch.allclose(injected(X), model(X))
    assert_rel_close(remove_attention(injected)(X), model(X))


def test_modes_auto_hook_and_deprecated_fx_give_the_same_model():
    model = TinyResNet().eval()
    by_auto = inject_attention(model, "eca", after="ResidualBlock", example_input=X[:1]).eval()
    by_hook = inject_attention(model, "eca", after="ResidualBlock", example_input=X[:1], mode="hook").eval()
    with pytest.warns(FutureWarning, match="mode='fx' no longer rewrites the whole model"):
        by_fx = inject_attention(model, "eca", after="ResidualBlock", example_input=X[:1], mode="fx").eval()
    for other in (by_hook, by_fx):
        assert type(other) is TinyResNet and other.injection_report.mode == "hook"
        assert [s.attached for s in other.injection_report.sites] == [s.attached for s in by_auto.injection_report.sites]
        other.load_state_dict(by_auto.state_dict())
        assert torch.equal(other(X), by_auto(X))


def test_branch_on_a_block_whose_forward_cannot_be_traced():
    with pytest.raises(ValueError, match=r"block 'gate' \(ShapeGatedBlock\) cannot be traced.*where='after' or 'before'"):
        inject_attention(GatedSubmoduleNet(), "eca", branch="ShapeGatedBlock", example_input=X[:1])


def test_timm_mobilevit_s():
    timm = pytest.importorskip("timm")
    model = timm.create_model("mobilevit_s", pretrained=False).eval()
    x = torch.randn(1, 3, 64, 64)
    injected = inject_attention(model, "eca", after="BottleneckBlock", example_input=x).eval()
    report = injected.injection_report
    assert type(injected) is type(model)
    assert len(report.sites) == 7  # stages 0-4 hold 1, 3, 1, 1, 1 inverted bottlenecks
    assert not torch.allclose(injected(x), model(x))
    blocks = inject_attention(model, "eca", after="MobileVitBlock", example_input=x).eval()
    assert [s.channels for s in blocks.injection_report.sites] == [96, 128, 160]
    assert_rel_close(remove_attention(blocks)(x), model(x))


def test_timm_tf_efficientnetv2_s_same_padding():
    timm = pytest.importorskip("timm")
    model = timm.create_model("tf_efficientnetv2_s", pretrained=False).eval()
    injected = inject_attention(model, "eca", after="EdgeResidual", example_input=torch.randn(1, 3, 64, 64))
    assert len(injected.injection_report.sites) == 8  # stages 1 and 2: 4 + 4 fused-MBConv blocks
