"""``branch``: only the block is traced, the attention hooks the module that ends its residual
branch; class selectors skip blocks without a skip (items 6 and 7 of issue 14)."""
import pytest
import torch
import torch.nn as nn

from .inject_models import PlainBlock, ResidualBlock, TinyResNet
from plugattn.inject import find_residual_add, inject_attention, remove_attention
from plugattn.inject.branch import NoResidualError, plan_branch
from plugattn.inject.tracing import trace_block

X = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(4))
torchvision = pytest.importorskip("torchvision")
timm = pytest.importorskip("timm")


def test_regnet_projection_plus_transform_both_module_calls():
    # item 6: x = self.proj(x) + self.f(x): the lighter operand (1 conv + BN) is the skip
    block = torchvision.models.regnet_y_400mf().trunk_output.block1[0]
    residual = find_residual_add(trace_block(block), block)
    assert (residual.branch.target, residual.skip.target) == ("f", "proj")
    injected = inject_attention(torchvision.models.regnet_y_400mf(), "se", branch="ResBottleneckBlock", example_input=X)
    # RegNetY-400MF (Radosavovic et al. 2020): depths 1, 3, 6, 6 -> 16 residual blocks, all with a skip
    assert len(injected.injection_report.sites) == 16 and not injected.injection_report.skipped


def test_class_selector_skips_blocks_without_a_skip_and_reports_them():
    # item 7: MobileNetV2's first block of each stage has no residual connection
    injected = inject_attention(torchvision.models.mobilenet_v2(), "eca", branch="InvertedResidual", example_input=X)
    report = injected.injection_report
    assert [s for s, _ in report.skipped] == ["features.1", "features.2", "features.4", "features.7",
                                              "features.11", "features.14", "features.17"]
    assert all(reason == "no residual addition" for _, reason in report.skipped)
    assert "skipped features.1: no residual addition" in str(report)
    with pytest.raises(NoResidualError, match=r"block 'features.1' \(InvertedResidual\) has no residual addition"):
        inject_attention(torchvision.models.mobilenet_v2(), "eca", branch="InvertedResidual", example_input=X,
                         no_residual="error")


def test_timm_efficientnet_mixed_blocks_without_predicates():
    injected = inject_attention(timm.create_model("efficientnet_b0"), "eca", branch="InvertedResidual", example_input=X)
    # Tan & Le 2019, Table 1: stages of 2, 2, 3, 3, 4, 1 MBConv6 blocks; the first of each has no skip
    assert len(injected.injection_report.sites) == 1 + 1 + 2 + 2 + 3 + 0
    assert all(s.hooked.endswith(".drop_path") for s in injected.injection_report.sites)


def test_yolo_style_bottleneck_without_shortcut_is_skipped():
    class Bottleneck(nn.Module):  # ultralytics' Bottleneck(shortcut=...)
        def __init__(self, c, shortcut):
            super().__init__()
            self.cv1, self.cv2, self.add = nn.Conv2d(c, c, 3, 1, 1), nn.Conv2d(c, c, 3, 1, 1), shortcut

        def forward(self, x):
            return x + self.cv2(self.cv1(x)) if self.add else self.cv2(self.cv1(x))

    model = nn.Sequential(nn.Conv2d(3, 8, 1), Bottleneck(8, True), Bottleneck(8, False))
    injected = inject_attention(model, "eca", branch="Bottleneck", example_input=X)
    assert [s.site for s in injected.injection_report.sites] == ["1"]
    assert injected.injection_report.skipped == [("2", "no residual addition")]


def test_dla_basic_says_the_skip_is_passed_in():
    with pytest.raises(NoResidualError, match=r"'level2.tree1' \(DlaBasic\).*its skip 'shortcut' is passed in by the caller"):
        inject_attention(timm.create_model("dla34"), "eca", branch="DlaBasic", example_input=X)


def test_no_block_with_a_residual_is_an_error():
    with pytest.raises(NoResidualError, match=r"matched 1 block\(s\), none with a residual addition.*'stem' \(PlainBlock\)"):
        inject_attention(TinyResNet(), "eca", branch="PlainBlock", example_input=X)


def test_branch_ending_in_a_function_names_the_block_and_the_alternative():
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 1)

        def forward(self, x):
            return x + self.conv(x) * 0.5

    with pytest.raises(ValueError, match=r"block '0' \(Scaled\): its residual branch ends in call_function 'mul'.*after="):
        inject_attention(nn.Sequential(Scaled()), "eca", branch="Scaled", example_input=X)


def test_branch_end_module_shared_between_blocks_is_refused():
    class Block(nn.Module):
        def __init__(self, conv):
            super().__init__()
            self.conv = conv

        def forward(self, x):
            return x + self.conv(x)

    shared = nn.Conv2d(3, 3, 1)
    model = nn.Sequential(Block(shared), Block(shared))
    with pytest.raises(ValueError, match=r"branch ends in '0.conv', which runs 2 times per forward"):
        inject_attention(model, "eca", branch="Block", example_input=X)


def test_plan_names_the_end_module():
    assert plan_branch(ResidualBlock(4, 4), "b").end_name == "b.norm_b"
    with pytest.raises(NoResidualError):
        plan_branch(PlainBlock(3, 4), "stem")


def test_the_block_keeps_its_class_and_forward_and_removal_is_exact():
    model = TinyResNet().eval()
    injected = inject_attention(model, "eca", branch="ResidualBlock", example_input=X).eval()
    assert type(injected.block1) is ResidualBlock and "forward" not in vars(injected.block1)
    assert [s.attached for s in injected.injection_report.sites] == [
        "forward hook on block1.norm_b", "forward hook on block2.norm_b"]
    assert torch.equal(remove_attention(injected)(X), model(X))
