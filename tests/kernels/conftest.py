"""Fixtures of the kernel tests.

* Every kernel output starts as NaN (autouse, every test here), so an element a kernel forgets to
  write fails its test.
* ``tensors_on_device``: the tensors a test creates go to :data:`kernel_cases.DEVICE` (the GPU when
  there is one). Only the op test files ask for it (``pytestmark``): the window-attention, plan and
  dispatch tests also check what happens to CPU tensors, and keep creating them on a GPU machine.
"""
from __future__ import annotations

from typing import Iterator

import pytest
import torch

from plugattn.kernels import _common

from .kernel_cases import DEVICE


@pytest.fixture(autouse=True)
def poison_outputs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_common, "POISON_OUTPUTS", True)


@pytest.fixture
def tensors_on_device() -> Iterator[None]:
    if DEVICE == "cpu":
        yield
    else:
        with torch.device(DEVICE):
            yield
