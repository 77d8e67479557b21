"""The one timer of plugattn (benchmarks and ``plugattn inject``), the timed passes, copy bandwidth.

A time is a median in milliseconds: on CUDA ``triton.testing.do_bench``'s (it synchronises and
flushes L2 between calls), on CPU ``torch.utils.benchmark.Timer.blocked_autorange``'s (blocks of calls
sized so the timer's own overhead is negligible, with a warm-up), with the process's thread count.
"""
from __future__ import annotations

import logging
import statistics
from typing import Callable, List, Optional, Sequence, Union

import torch

# torch.utils.benchmark imports cpp_extension, which logs "No CUDA runtime is found" on every run of a
# CUDA build of torch on a machine without a GPU; the timer never compiles anything, so hush it there.
_cpp_extension_log = logging.getLogger("torch.utils.cpp_extension")
_level = _cpp_extension_log.level
_cpp_extension_log.setLevel(logging.ERROR)
try:
    import torch.utils.benchmark
finally:
    _cpp_extension_log.setLevel(_level)

PASSES = ("fwd", "fwd+bwd")
QUICK_RUN_S = 0.01  # measuring time per timed callable: smoke runs and tests
FULL_RUN_S = 0.2  # what a benchmark run spends on each timed callable


def median_ms(fn: Callable[[], object], device: Union[str, torch.device], quick: bool = False,
              run_s: Optional[float] = None) -> float:
    """Median time of ``fn()`` in milliseconds, measured for about ``run_s`` seconds (default: 0.01 s
    with ``quick``, 0.2 s otherwise); each call is one sample on CUDA, one block's mean on CPU.

    Example:
        >>> median_ms(lambda: torch.ones(8).sum(), "cpu", quick=True) > 0
        True
    """
    seconds = run_s if run_s is not None else (QUICK_RUN_S if quick else FULL_RUN_S)
    if torch.device(device).type == "cuda":
        import triton.testing

        return float(triton.testing.do_bench(fn, warmup=max(1.0, 250 * seconds), rep=1000 * seconds,
                                             return_mode="median"))
    timer = torch.utils.benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
    return timer.blocked_autorange(min_run_time=seconds).median * 1e3


def median_ms_in_turns(fns: Sequence[Callable[[], object]], device: Union[str, torch.device],
                       rounds: int) -> List[float]:
    """Median over ``rounds`` of :func:`median_ms` (quick) of each callable, timed in turns (a, b, a, b, ...)
    so that a change in machine load during the measurement affects all of them alike.

    Example:
        >>> len(median_ms_in_turns([lambda: None, lambda: None], "cpu", rounds=3))
        2
    """
    samples: List[List[float]] = [[] for _ in fns]
    for _ in range(rounds):
        for fn, times in zip(fns, samples):
            times.append(median_ms(fn, device, quick=True))
    return [statistics.median(times) for times in samples]


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
