"""One test per position: site counts, channels, parameter deltas and where exactly the attention acts."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from .inject_models import PlainBlock, PreActBlock, TinyResNet
from plugattn import create_attention
from plugattn.attention.eca import eca_kernel_size
from plugattn.inject import find_residual_add, inject_attention
from plugattn.parameters import count_parameters
from plugattn.testing import assert_rel_close

# ResNet-50 (He et al. 2016, Table 1): 3, 4, 6, 3 bottlenecks with 256, 512, 1024, 2048 output channels
RESNET50_OUT = [256] * 3 + [512] * 4 + [1024] * 6 + [2048] * 3
RESNET50_IN = [64, 256, 256] + [256, 512, 512, 512] + [512] + [1024] * 5 + [1024, 2048, 2048]


def test_after_every_resnet50_bottleneck(resnet50, image64):
    injected = inject_attention(resnet50, "eca", after="bottleneck", example_input=image64[:1])
    report = injected.injection_report
    assert len(report.sites) == 16
    assert [s.channels for s in report.sites] == RESNET50_OUT
    assert [s.attention for s in report.sites][:2] == ["layer1.0.eca", "layer1.1.eca"]
    # ECA's adaptive kernel k = |(log2 C + 1) / 2|_odd: 5 at 256, 512, 1024 and 7 at 2048 -> 15+20+30+21
    assert [eca_kernel_size(c) for c in (256, 512, 1024, 2048)] == [5, 5, 5, 7]
    assert count_parameters(injected) - count_parameters(resnet50) == 3 * 5 + 4 * 5 + 6 * 5 + 3 * 7 == 86
    assert report.params_added == 86
    injected.eval()
    assert not torch.allclose(injected(image64), resnet50(image64))


def test_after_applies_attention_to_the_block_output(image32):
    model = TinyResNet().eval()
    injected = inject_attention(model, "eca", after="ResidualBlock", example_input=image32).eval()
    x = image32
    # the injected model shares no objects with the original; rebuild the expected output by hand
    stem, block1, block2 = injected.stem, injected.block1, injected.block2
    # .forward() skips the module's hooks, so the attention is applied by hand here
    h = block2.eca(block2.forward(block1.eca(block1.forward(stem(x)))))
    expected = injected.fc(h.mean(dim=(2, 3)) * injected.scale)
    assert_rel_close(injected(x), expected)


def test_before_every_resnet50_bottleneck(resnet50, image32):
    injected = inject_attention(resnet50, "eca", before="bottleneck", example_input=image32)
    report = injected.injection_report
    assert [s.channels for s in report.sites] == RESNET50_IN
    assert {s.position for s in report.sites} == {"before"}
    expected_params = sum(eca_kernel_size(c) for c in RESNET50_IN)
    assert count_parameters(injected) - count_parameters(resnet50) == expected_params == report.params_added


def test_before_applies_attention_to_the_block_input(image32):
    model = TinyResNet().eval()
    injected = inject_attention(model, "eca", where="before", selector="ResidualBlock", example_input=image32).eval()
    x = image32
    h = injected.block1.forward(injected.block1.eca(injected.stem(x)))  # .forward(): no hooks
    h = injected.block2.forward(injected.block2.eca(h))
    assert_rel_close(injected(x), injected.fc(h.mean(dim=(2, 3)) * injected.scale))


def test_branch_every_resnet50_bottleneck(resnet50, image64):
    injected = inject_attention(resnet50, "eca", branch="bottleneck", example_input=image64[:1])
    report = injected.injection_report
    assert [s.channels for s in report.sites] == RESNET50_OUT  # the branch ends in conv3 / bn3: 4x width
    assert report.params_added == 86
    # ECA-Net Fig. 2 / SENet Fig. 3: after the last BN of the branch, before the addition
    assert [s.hooked for s in report.sites][:2] == ["layer1.0.bn3", "layer1.1.bn3"]
    assert type(injected.layer1[0]) is type(resnet50.layer1[0])  # the block keeps its class and forward
    injected.eval()
    assert not torch.allclose(injected(image64), resnet50(image64))


def test_branch_applies_attention_before_the_skip_addition(image32):
    model = TinyResNet().eval()
    injected = inject_attention(model, "eca", branch="ResidualBlock", example_input=image32).eval()
    stem_out = injected.stem(image32)
    block = injected.block1
    branch = block.norm_b.forward(block.conv_b(F.relu(block.norm_a(block.conv_a(stem_out)))))  # no hooks
    expected = F.relu(stem_out + block.eca(branch))
    assert_rel_close(block(stem_out), expected)
    assert [s.channels for s in injected.injection_report.sites] == [8, 16]


def test_branch_on_preactivation_block():
    model = nn.Sequential(PreActBlock(4, 8)).eval()
    injected = inject_attention(model, "eca", branch="PreActBlock", example_input=torch.randn(1, 4, 8, 8))
    assert injected.injection_report.sites[0].hooked == "0.conv_b"  # the long branch, not the 1x1 shortcut
    assert injected.injection_report.sites[0].channels == 8


def test_branch_on_torchvision_basic_block(image32):
    torchvision = pytest.importorskip("torchvision")
    injected = inject_attention(torchvision.models.resnet18(), "se", branch="basicblock", example_input=image32)
    assert injected.injection_report.sites[2].hooked == "layer2.0.bn2"
    assert [s.channels for s in injected.injection_report.sites] == [64, 64, 128, 128, 256, 256, 512, 512]


def test_find_residual_add_ignores_inner_additions():
    class Res2NetLike(nn.Module):  # hierarchical additions inside the branch (Gao et al., TPAMI 2019)
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(8, 8, 1)
            self.convs = nn.ModuleList(nn.Conv2d(4, 4, 3, padding=1) for _ in range(2))
            self.conv3 = nn.Conv2d(8, 8, 1)

        def forward(self, x):
            a, b = torch.split(self.conv1(x), 4, dim=1)
            a = self.convs[0](a)
            b = self.convs[1](b + a)
            return self.conv3(torch.cat([a, b], 1)) + x

    graph = torch.fx.symbolic_trace(Res2NetLike()).graph
    found = find_residual_add(graph)
    assert found.branch.target == "conv3" and found.skip.name == "x"


def test_find_residual_add_takes_the_input_residual_of_a_two_residual_block():
    class TwoResiduals(nn.Module):  # transformer-style: x + f(x), then y + g(y)
        def __init__(self):
            super().__init__()
            self.f = nn.Conv2d(4, 4, 1)
            self.g = nn.Conv2d(4, 4, 1)

        def forward(self, x):
            y = x + self.f(x)
            return y + self.g(y)

    found = find_residual_add(torch.fx.symbolic_trace(TwoResiduals()).graph)
    assert found.branch.target == "f" and found.skip.name == "x"


def test_find_residual_add_none_without_residual():
    assert find_residual_add(torch.fx.symbolic_trace(PlainBlock(3, 4)).graph) is None


def test_attention_class_factory_and_kwargs(image32):
    model = TinyResNet()
    by_class = inject_attention(model, nn.Identity, after="ResidualBlock", example_input=image32)
    assert by_class.injection_report.sites[0].attention == "block1.identity"

    def half_se(channels):
        return create_attention("se", channels, reduction=2)

    by_factory = inject_attention(model, half_se, after="ResidualBlock", example_input=image32)
    assert by_factory.injection_report.sites[1].attention == "block2.half_se"
    # SE (Hu et al. 2018): two 1x1 convs with bias: C*h + h + h*C + C, h = C // r
    with_kwargs = inject_attention(model, "se", after="ResidualBlock", reduction=4, example_input=image32)
    expected = sum(c * (c // 4) + c // 4 + (c // 4) * c + c for c in (8, 16))
    assert with_kwargs.injection_report.params_added == expected
    assert by_factory.injection_report.params_added == sum(c * (c // 2) + c // 2 + (c // 2) * c + c for c in (8, 16))
