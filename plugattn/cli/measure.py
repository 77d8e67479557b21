"""Model measurements for ``plugattn inject``: parameters, multiply-adds, forward time.

Parameters come from :func:`plugattn.parameters.count_parameters`, plugattn's one parameter counter.

Multiply-adds come from :func:`plugattn.flops.count_macs`, plugattn's one counter (PyTorch's
``FlopCounterMode``, FLOPs / 2, with formulas added for CPU scaled-dot-product attention and FFTs; see
that module for what counts).
"""
from __future__ import annotations

import statistics
import time
from typing import List, Sequence

import torch
import torch.nn as nn

from ..flops import MAC_COUNTING_NOTE, count_macs
from ..parameters import count_parameters

__all__ = ["MAC_COUNTING_NOTE", "count_macs", "count_parameters", "median_forward_ms"]


def median_forward_ms(models: Sequence[nn.Module], example: torch.Tensor, repeats: int) -> List[float]:
    """Median time (ms) of an inference forward pass of each model, after one warm-up call each.

    The models are timed in turns (a, b, a, b, ...) so that a change in machine load during the
    measurement affects all of them alike.

    Example:
        >>> len(median_forward_ms([nn.Identity(), nn.Identity()], torch.randn(2), repeats=3))
        2
    """
    modes = [m.training for m in models]
    samples: List[List[float]] = [[] for _ in models]
    try:
        for model in models:
            model.eval()
        with torch.no_grad():
            for model in models:
                model(example)  # warm-up: allocator, dispatch and kernel caches
            for _ in range(repeats):
                for model, times in zip(models, samples):
                    if example.is_cuda:
                        torch.cuda.synchronize(example.device)
                    start = time.perf_counter()
                    model(example)
                    if example.is_cuda:
                        torch.cuda.synchronize(example.device)
                    times.append((time.perf_counter() - start) * 1e3)
    finally:
        for model, was_training in zip(models, modes):
            model.train(was_training)
    return [statistics.median(times) for times in samples]
