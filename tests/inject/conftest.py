"""Fixtures for the injection tests: models are built once per worker and copied per test."""
import copy

import pytest
import torch


@pytest.fixture(scope="session")
def _resnet50_master():
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    return torchvision.models.resnet50().eval()  # random init, never downloaded


@pytest.fixture
def resnet50(_resnet50_master):
    """A torchvision ResNet-50 (random weights, eval mode), fresh copy per test."""
    return copy.deepcopy(_resnet50_master)


@pytest.fixture
def image32():
    return torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))


@pytest.fixture
def image64():
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
