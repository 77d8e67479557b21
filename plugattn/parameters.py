"""Parameter counting: plugattn's one counter (``plugattn inject`` and ``plugattn list``, the injection
report's per-site figures, the tests' expected counts)."""
from __future__ import annotations

import torch.nn as nn


def count_parameters(model: nn.Module) -> int:
    """Number of parameter elements of ``model`` (a parameter shared by two modules counted once,
    as ``model.parameters()`` yields it once).

    Example:
        >>> count_parameters(nn.Linear(3, 2))
        8
    """
    return sum(p.numel() for p in model.parameters())
