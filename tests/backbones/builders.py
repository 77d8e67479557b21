"""Inputs and models for the backbone tests (import with ``from ..builders import ...``): seeded batches and
their module-scoped fixtures, builds on the ``meta`` device, the ``model`` fixture of a test file, and
models materialised with seeded random weights.

Large models are built on the ``meta`` device where only shapes matter (parameter counts, ``num_classes`` /
``in_chans`` variants), and materialised with seeded random values where numbers matter but the paper init
does not (weight loading against torchvision / timm).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable

import pytest
import timm
import torch
import torch.nn as nn

from plugattn.parameters import count_parameters

if TYPE_CHECKING:
    from .contract import ContractCase


# ----------------------------------------------------------------------------------------------- inputs
def seeded_batch(size: int, batch: int = 2, seed: int = 1) -> torch.Tensor:
    """A seeded (batch, 3, size, size) input."""
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def random_batch(size: int, batch: int = 2) -> torch.Tensor:
    """An unseeded (batch, 3, size, size) input (from the global RNG)."""
    return torch.randn(batch, 3, size, size)


@pytest.fixture(scope="module")
def x32() -> torch.Tensor:
    """A seeded CIFAR-sized batch of 2 (import the fixture into a test module to use it)."""
    return seeded_batch(32)


@pytest.fixture(scope="module")
def x64() -> torch.Tensor:
    """A seeded small ImageNet-model batch of 2."""
    return seeded_batch(64)


@pytest.fixture(scope="module")
def x224() -> torch.Tensor:
    """A seeded single 224 x 224 image (models defined at 224 x 224 only)."""
    return seeded_batch(224, batch=1)


# ----------------------------------------------------------------------------------------------- building
def on_meta(factory: Callable[..., nn.Module], **kwargs) -> nn.Module:
    """Build without allocating or initialising weights (shapes and counts only)."""
    with torch.device("meta"):
        return factory(**kwargs)


def randomize_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every parameter and buffer a seeded random value of a sensible scale, so a copy that
    drops or misplaces any tensor changes the output (BN statistics, norm scales, layer scales
    and zero-initialised residual gammas included)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
            if not tensor.is_floating_point():
                continue
            leaf = name.rsplit(".", 1)[-1]
            if leaf == "running_var":
                value = 0.5 + torch.rand(tensor.shape, generator=generator)
            elif leaf in ("layer_scale", "gamma"):
                value = 0.1 * (0.5 + torch.rand(tensor.shape, generator=generator))
            elif tensor.dim() > 1:
                fan_in = tensor[0].numel()
                value = torch.randn(tensor.shape, generator=generator) / math.sqrt(fan_in)
            elif leaf == "weight":  # norm scales
                value = 0.5 + torch.rand(tensor.shape, generator=generator)
            else:  # biases, running means
                value = 0.1 * torch.randn(tensor.shape, generator=generator)
            tensor.copy_(value.to(tensor.dtype))
    return model


def materialize_random(factory: Callable[..., nn.Module], seed: int = 0, **kwargs) -> nn.Module:
    """Build on meta, allocate on CPU, fill with :func:`randomize_` (fast for 60M+ parameter models)."""
    model = on_meta(factory, **kwargs).to_empty(device="cpu")
    return randomize_(model, seed).eval()


def timm_param_count(name: str, **kwargs) -> int:
    """Parameters of timm's model ``name`` (built on meta: no weights allocated)."""
    with torch.device("meta"):
        return count_parameters(timm.create_model(name, pretrained=False, **kwargs))


def model_fixture(case: ContractCase):
    """The module-scoped ``model`` fixture of a test file: ``model = model_fixture(CASE)`` (the case's
    seeded eval-mode build, under the fixture name ``case.fixture``)."""
    return pytest.fixture(scope="module", name=case.fixture)(lambda: case.build())
