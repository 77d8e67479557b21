"""Model measurements for ``plugattn inject``: parameters, multiply-adds, forward time.

Multiply-adds come from PyTorch's own ``torch.utils.flop_counter.FlopCounterMode`` (FLOPs / 2).
It counts the ops it has formulas for - convolutions (and their transposes), matrix multiplies
(``mm``, ``addmm``, ``bmm``, ``baddbmm``) and scaled-dot-product attention - and nothing else:
elementwise ops, pooling, normalisation, activations and gates count zero. So SimAM, which is all
elementwise, adds 0 MACs by this measure; ECA adds its 1-D channel convolution.
"""
from __future__ import annotations

import statistics
import time
from typing import List, Sequence

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from ..kernels.dispatch import use_backend

MAC_COUNTING_NOTE = (
    "multiply-adds: torch.utils.flop_counter.FlopCounterMode (FLOPs / 2); it counts convolutions, "
    "matrix multiplies and scaled-dot-product attention only - elementwise ops, pooling, "
    "normalisation and gates count zero"
)


def count_parameters(model: nn.Module) -> int:
    """Number of parameter elements (shared parameters counted once).

    Example:
        >>> count_parameters(nn.Linear(3, 2))
        8
    """
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, example: torch.Tensor) -> int:
    """Multiply-adds of one inference forward pass on ``example`` (FlopCounterMode FLOPs / 2).

    Runs with the PyTorch backend so the counter sees the reference ops that the fused kernels
    replace (a Triton kernel is opaque to it).

    Example:
        >>> count_macs(nn.Linear(3, 2), torch.randn(1, 3))
        6
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), use_backend("torch"), FlopCounterMode(display=False) as counter:
            model(example)
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2


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
