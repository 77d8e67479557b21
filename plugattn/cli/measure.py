"""Model measurements for ``plugattn inject``: parameters, multiply-adds, forward time (the one timer).

Parameters come from :func:`plugattn.parameters.count_parameters`, plugattn's one parameter counter.

Multiply-adds come from :func:`plugattn.flops.count_macs`, plugattn's one counter (PyTorch's
``FlopCounterMode``, FLOPs / 2, with formulas added for CPU scaled-dot-product attention and FFTs; see
that module for what counts).
"""
from __future__ import annotations

from typing import List, Sequence

import torch
import torch.nn as nn

from ..flops import MAC_COUNTING_NOTE, count_macs
from ..parameters import count_parameters

__all__ = ["MAC_COUNTING_NOTE", "count_macs", "count_parameters", "inference_forward_ms"]


def inference_forward_ms(models: Sequence[nn.Module], example: torch.Tensor, rounds: int) -> List[float]:
    """Median time (ms) of an inference forward pass (eval mode, no autograd) of each model, from the
    one timer (:func:`plugattn.benchmark.timing.median_ms_in_turns`: ``rounds`` rounds, models in turns).

    Example:
        >>> len(inference_forward_ms([nn.Identity(), nn.Identity()], torch.randn(2), rounds=3))
        2
    """
    from ..benchmark.timing import median_ms_in_turns

    def forward(model: nn.Module):
        def run() -> object:
            with torch.no_grad():
                return model(example)
        return run

    modes = [m.training for m in models]
    try:
        for model in models:
            model.eval()
        return median_ms_in_turns([forward(m) for m in models], example.device, rounds)
    finally:
        for model, was_training in zip(models, modes):
            model.train(was_training)
