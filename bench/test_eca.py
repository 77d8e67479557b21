"""CPU benchmarks (pytest-benchmark): the PyTorch path of ECA against a naive reference (explicit
per-tap channel convolution), so regressions of the reference path show.
Run: ``python -m pytest bench/test_eca.py``."""
from __future__ import annotations

import pytest
import torch

from plugattn import kernels

SHAPE = (8, 256, 28, 28)
KERNEL = 5


def naive_eca(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Pool, then the channel convolution written out tap by tap with explicit zero padding."""
    pooled = x.mean(dim=(2, 3))  # (N, C)
    half = weight.shape[-1] // 2
    padded = torch.nn.functional.pad(pooled, (half, half))
    logits = sum(weight[0, 0, j] * padded[:, j : j + pooled.shape[1]] for j in range(weight.shape[-1]))
    return x * torch.sigmoid(logits)[:, :, None, None]


@pytest.fixture(scope="module")
def inputs():
    generator = torch.Generator().manual_seed(0)
    return torch.randn(SHAPE, generator=generator), torch.randn(1, 1, KERNEL, generator=generator)


@pytest.mark.benchmark(group="eca-forward")
def test_torch_path(benchmark, inputs):
    x, weight = inputs
    y = benchmark(kernels.eca, x, weight, "torch")
    torch.testing.assert_close(y, naive_eca(x, weight))


@pytest.mark.benchmark(group="eca-forward")
def test_naive_reference(benchmark, inputs):
    benchmark(naive_eca, *inputs)


@pytest.mark.benchmark(group="eca-forward-backward")
def test_torch_path_forward_backward(benchmark, inputs):
    x, weight = (t.clone().requires_grad_(True) for t in inputs)
    benchmark(lambda: torch.autograd.grad(kernels.eca(x, weight, "torch").sum(), (x, weight)))
