"""CPU benchmarks (pytest-benchmark): the PyTorch path of SE against a naive reference (the
excitation image by image with matrix-vector products), so regressions of the reference path show.
Run: ``python -m pytest bench/test_se.py``."""
from __future__ import annotations

import pytest
import torch

from plugattn import kernels

SHAPE = (8, 256, 28, 28)
HIDDEN = 16


def naive_se(x, w1, b1, w2, b2):
    """Squeeze, excite and scale one image at a time (ReLU, sigmoid)."""
    out = torch.empty_like(x)
    for n in range(x.shape[0]):
        squeezed = x[n].mean(dim=(1, 2))  # (C,)
        scale = torch.sigmoid(w2 @ torch.relu(w1 @ squeezed + b1) + b2)  # (C,)
        out[n] = x[n] * scale[:, None, None]
    return out


@pytest.fixture(scope="module")
def inputs():
    generator = torch.Generator().manual_seed(0)
    channels = SHAPE[1]
    shapes = [SHAPE, (HIDDEN, channels), (HIDDEN,), (channels, HIDDEN), (channels,)]
    return [torch.randn(s, generator=generator) * (1.0 if i == 0 else 0.2) for i, s in enumerate(shapes)]


@pytest.mark.benchmark(group="se-forward")
def test_torch_path(benchmark, inputs):
    y = benchmark(kernels.se, *inputs, backend="torch")
    torch.testing.assert_close(y, naive_se(*inputs))


@pytest.mark.benchmark(group="se-forward")
def test_naive_reference(benchmark, inputs):
    benchmark(naive_se, *inputs)


@pytest.mark.benchmark(group="se-forward-backward")
def test_torch_path_forward_backward(benchmark, inputs):
    leaves = [t.clone().requires_grad_(True) for t in inputs]
    benchmark(lambda: torch.autograd.grad(kernels.se(*leaves, backend="torch").sum(), leaves))
