"""Measures a registered backbone: class, parameters, multiply-adds (:func:`measure`).

The table of every built-in backbone's measurements, :data:`MEASURED`, lives in the torch-free
:mod:`plugattn._catalog` (re-exported here), so ``plugattn list backbones`` and the README's tables read
it without building 62 models; ``tests/backbones/test_measured.py`` rebuilds every model and requires the
same numbers, so a changed model cannot leave a stale entry. Regenerate after changing a model::

    python -m plugattn._catalog_build

How each figure is measured: see :mod:`plugattn._catalog`.
"""
from __future__ import annotations

from .._catalog import MEASURED, Measured

__all__ = ["MEASURED", "Measured", "measure"]


def measure(name: str) -> Measured:
    """Build backbone ``name`` on the meta device and measure it.

    Example:
        >>> measure("resnet18")  # doctest: +SKIP
        Measured(model_class='ResNet', params=11689512, macs=1814073344, input_size=224)
    """
    import torch

    from ..flops import count_macs
    from ..parameters import count_parameters
    from .registry import create_backbone

    with torch.device("meta"):
        model = create_backbone(name)
    size = model.default_input_size
    macs = count_macs(model, torch.empty(1, 3, size, size, device="meta"))
    return Measured(type(model).__name__, count_parameters(model), macs, size)
