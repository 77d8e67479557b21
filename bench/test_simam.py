"""CPU benchmarks (pytest-benchmark): the PyTorch path of SimAM against a naive per-image loop,
so regressions of the reference path show. Run: ``python -m pytest bench/test_simam.py``."""
from __future__ import annotations

import pytest
import torch

from plugattn import kernels

SHAPE = (8, 64, 28, 28)


def naive_simam(x: torch.Tensor, e_lambda: float = 1e-4) -> torch.Tensor:
    """One image and one channel at a time, straight from the paper's code (Fig. 3)."""
    out = torch.empty_like(x)
    neighbours = max(x.shape[2] * x.shape[3] - 1, 1)
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            plane = x[n, c]
            d = (plane - plane.mean()) ** 2
            out[n, c] = plane * torch.sigmoid(d / (4 * (d.sum() / neighbours + e_lambda)) + 0.5)
    return out


@pytest.fixture(scope="module")
def x() -> torch.Tensor:
    return torch.randn(SHAPE, generator=torch.Generator().manual_seed(0))


@pytest.mark.benchmark(group="simam-forward")
def test_torch_path(benchmark, x):
    y = benchmark(kernels.simam, x, 1e-4, "torch")
    torch.testing.assert_close(y, naive_simam(x))


@pytest.mark.benchmark(group="simam-forward")
def test_naive_reference(benchmark, x):
    benchmark(naive_simam, x)


@pytest.mark.benchmark(group="simam-forward-backward")
def test_torch_path_forward_backward(benchmark, x):
    leaf = x.clone().requires_grad_(True)
    benchmark(lambda: torch.autograd.grad(kernels.simam(leaf, 1e-4, "torch").sum(), leaf))
