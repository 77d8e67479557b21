"""plugattn.flops: the one multiply-add counter counts CPU scaled-dot-product attention and FFTs (PyTorch counts 0)."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from plugattn.backbones import create_backbone
from plugattn.backbones.mlp.gfnet import GlobalFilter
from plugattn.cli import measure
from plugattn.flops import count_macs, fft_flops


class SDPA(nn.Module):
    def forward(self, q, k, v):
        return F.scaled_dot_product_attention(q, k, v)


class Wrap(nn.Module):
    """count_macs takes one input: feed it to a function of the test's choice."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def test_cpu_attention_counts_both_matmuls():
    b, h, n, m, d = 2, 3, 10, 7, 16  # queries n, keys m: Q K^T and A V are b*h*n*m*d multiply-adds each
    q, k, v = torch.randn(b, h, n, d), torch.randn(b, h, m, d), torch.randn(b, h, m, d)
    with FlopCounterMode(display=False) as counter:
        SDPA()(q, k, v)
    ops = {str(op) for op in counter.get_flop_counts()["Global"]}
    assert ops == {"aten._scaled_dot_product_flash_attention_for_cpu"}  # the op PyTorch has no formula for
    assert counter.get_total_flops() // 2 == 2 * b * h * n * m * d


def test_cpu_attention_backward_is_counted():
    q, k, v = (torch.randn(1, 2, 9, 8, requires_grad=True) for _ in range(3))
    with FlopCounterMode(display=False) as counter:
        SDPA()(q, k, v).sum().backward()
    counts = {str(op): flops for op, flops in counter.get_flop_counts()["Global"].items()}
    forward = 2 * 2 * (1 * 2 * 9 * 9 * 8)
    assert counts["aten._scaled_dot_product_flash_attention_for_cpu"] == forward
    assert counts["aten._scaled_dot_product_flash_attention_for_cpu_backward"] == 5 * forward // 2  # 5 matmuls


def test_fft_convention_5_n_log2_n():
    x = torch.randn(4, 3, 16)  # 12 transforms of 16 points
    complex_flops = 12 * 5 * 16 * 4
    assert count_macs(Wrap(lambda t: torch.fft.fft(t.to(torch.complex64))), x) == complex_flops // 2
    assert count_macs(Wrap(torch.fft.rfft), x) == complex_flops // 4  # real input: half
    assert count_macs(Wrap(lambda t: torch.fft.irfft(torch.fft.rfft(t), n=16)), x) == complex_flops // 2
    assert fft_flops((5, 7), dims=(1,), real=False) == round(5 * 5 * 7 * math.log2(7))
    assert fft_flops((5, 1), dims=(1,), real=True) == 0


def test_gfnet_filter_is_counted():
    # rfft2 and irfft2 over the 14 x 14 grid of 2 x 8 channels: 2.5 * 196 log2(196) FLOPs per channel each,
    # so the MACs (FLOPs / 2) of the pair are one transform's FLOPs
    one_transform = round((2 * 8) * 2.5 * 196 * math.log2(196))
    assert count_macs(GlobalFilter(8, 14, 14), torch.randn(2, 196, 8)) == one_transform


def test_cpu_count_equals_the_meta_count_of_the_decomposed_attention():
    # on meta, SDPA runs its math decomposition (bmm, which PyTorch counts): the CPU formula must agree
    torch.manual_seed(0)
    model = create_backbone("pvt_tiny", num_classes=10)
    with torch.device("meta"):
        on_meta = create_backbone("pvt_tiny", num_classes=10)
    cpu = count_macs(model, torch.randn(1, 3, 64, 64))
    assert cpu == count_macs(on_meta, torch.empty(1, 3, 64, 64, device="meta"))
    assert model.training  # mode put back
    assert all(p.requires_grad for p in model.parameters())  # gradients switched back on


def test_the_cli_counts_with_the_same_counter():
    assert measure.count_macs is count_macs
    assert "FFTs" in measure.MAC_COUNTING_NOTE


def test_a_parameter_passed_to_a_submodule_is_counted():
    # PiT passes its class token (a parameter) to each stage; FlopCounterMode's module tracker used to fail on it
    with torch.device("meta"):
        model = create_backbone("pit_ti_224")
    assert count_macs(model, torch.empty(1, 3, 224, 224, device="meta")) > 0
