"""Checks for backbones defined at one input size (sMLPNet, ViP, DynaMixer): import with
``from fixed_size_checks import ...``."""
from __future__ import annotations

import pytest
import torch
import torch.fx
import torch.nn as nn


def check_fixed_input_size(model: nn.Module, built_for: int, other: int) -> None:
    """An input of another size raises the clear ``ValueError`` (naming the model, both sizes) in eager
    mode and in the FX-traced model, where the size check is a graph node run on real tensors."""
    wrong = torch.randn(1, 3, other, other)
    expected = (rf"{type(model).__name__} is defined for {built_for}x{built_for} inputs only.*"
                rf"\(1, 3, {other}, {other}\)")
    with pytest.raises(ValueError, match=expected):
        model(wrong)
    with pytest.raises(ValueError, match=expected):
        torch.fx.symbolic_trace(model)(wrong)
