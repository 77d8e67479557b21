"""Timing helpers shared by the benchmark runners: median times, the timed passes, copy bandwidth.

On CUDA a time is ``triton.testing.do_bench``'s median (it flushes L2 and synchronises); on CPU it
is the median of repeated ``time.perf_counter`` calls after one warm-up call.
"""
from __future__ import annotations

import statistics
import time
from typing import Callable, Sequence

import torch

PASSES = ("fwd", "fwd+bwd")


def median_ms(fn: Callable[[], object], device: str, quick: bool = False) -> float:
    """Median wall time of ``fn()`` in milliseconds.

    Example:
        >>> median_ms(lambda: None, "cpu", quick=True) >= 0
        True
    """
    if device.startswith("cuda"):
        import triton.testing

        return float(triton.testing.do_bench(fn, return_mode="median"))
    fn()  # warm-up: first calls pay for allocation and dispatch caches
    samples = []
    for _ in range(3 if quick else 10):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples)


def wall_median_ms(fn: Callable[[], object], device: torch.device, warmup: int, reps: int) -> float:
    """Median wall time of ``fn`` in milliseconds over ``reps`` calls after ``warmup`` calls, CUDA-synchronised.

    Example:
        >>> wall_median_ms(lambda: None, torch.device("cpu"), warmup=1, reps=3) >= 0
        True
    """
    for _ in range(warmup):
        fn()
    _synchronize(device)
    samples = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        _synchronize(device)
        samples.append((time.perf_counter() - start) * 1e3)
    samples.sort()
    return samples[len(samples) // 2]


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_pass(
    fn: Callable[..., torch.Tensor],
    args: Sequence[torch.Tensor],
    grad: torch.Tensor,
    differentiable: Sequence[torch.Tensor],
    pass_name: str,
) -> Callable[[], object]:
    """A no-argument callable running ``fn(*args)`` as one benchmark pass.

    ``"fwd"`` runs under ``torch.no_grad``; ``"fwd+bwd"`` also computes the gradients of
    ``differentiable`` (the input and the op's parameters) for the output gradient ``grad``.

    Example:
        >>> x = torch.randn(3, requires_grad=True)
        >>> run = timed_pass(torch.sin, [x], torch.ones(3), [x], "fwd+bwd")
        >>> len(run())
        1
    """
    if pass_name not in PASSES:
        raise ValueError(f"pass_name must be one of {PASSES}, got {pass_name!r}")
    if pass_name == "fwd":
        def forward_only() -> object:
            with torch.no_grad():
                return fn(*args)
        return forward_only

    def forward_backward() -> object:
        return torch.autograd.grad(fn(*args), list(differentiable), grad)
    return forward_backward


def copy_gbps(x: torch.Tensor, device: str, quick: bool = False) -> float:
    """Achieved bandwidth (GB/s) of a same-device copy of ``x``: read + write, 2 bytes moved per byte.

    The ceiling a memory-bound op is compared against, measured in the same run.

    Example:
        >>> copy_gbps(torch.randn(64), "cpu", quick=True) > 0
        True
    """
    source = x.detach()
    target = torch.empty_like(source)
    milliseconds = median_ms(lambda: target.copy_(source), device, quick)
    tensor_bytes = source.numel() * source.element_size()
    return 2 * tensor_bytes / milliseconds / 1e6


def floor_gbps(floor_bytes: float, milliseconds: float) -> float:
    """Bandwidth (GB/s) an op achieves if it moves exactly its byte floor in ``milliseconds``.

    Example:
        >>> floor_gbps(2e6, 1.0)
        2.0
    """
    return floor_bytes / milliseconds / 1e6
