"""Benchmark the SE / ECA / SimAM ops: eager PyTorch vs ``torch.compile`` vs plugattn.

Byte floors (B = N·C·H·W·element size):

* SimAM forward 2B (read x, write y); ECA forward 2B; SE forward 3B (its scale needs the whole
  image pooled first, so x is read twice).
* backward alone 3B for all three (read x and ∂y, write ∂x); ``fwd+bwd`` floors add the two.

On CPU "plugattn" is the PyTorch reference (the Triton kernels need CUDA), so CPU rows only show
that the runner works.
"""
from __future__ import annotations

from typing import Callable, Dict, Iterator, List, Sequence, Tuple

import torch

from .. import kernels
from ..attention.eca import eca_kernel_size
from .cases import check_drawn_from
from .results import Row
from .timing import PASSES, copy_gbps, median_ms, timed_pass

Shape = Tuple[int, int, int, int]

RESNET50_STAGES: List[Shape] = [(64, 256, 56, 56), (64, 512, 28, 28), (64, 1024, 14, 14), (64, 2048, 7, 7)]
QUICK_SHAPES: List[Shape] = [(2, 16, 8, 8), (2, 32, 4, 4)]
FULL_SHAPES = RESNET50_STAGES  # what a GPU run times by default
SHAPE_LAYOUT = "NxCxHxW"  # how ``plugattn bench --shapes`` spells one shape for these ops
DTYPES: Dict[str, torch.dtype] = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
OPS = ("simam", "eca", "se")
FORWARD_FLOOR = {"simam": 2, "eca": 2, "se": 3}  # in units of B
BACKWARD_FLOOR = 3


def _op_and_reference(op: str, channels: int, dtype: torch.dtype, device: str) -> Tuple[Callable, Callable, list]:
    """(plugattn call, eager reference call, parameters) for one op at ``channels``."""
    generator = torch.Generator(device="cpu").manual_seed(0)

    def param(*shape: int) -> torch.Tensor:
        return (torch.randn(*shape, generator=generator) * 0.3).to(device=device, dtype=dtype).requires_grad_(True)

    if op == "simam":
        return (lambda x: kernels.simam(x, 1e-4)), (lambda x: kernels.simam_reference(x, 1e-4)), []
    if op == "eca":
        weight = param(1, 1, eca_kernel_size(channels))
        return (lambda x: kernels.eca(x, weight)), (lambda x: kernels.eca_reference(x, weight)), [weight]
    if op == "se":
        hidden = max(1, channels // 16)
        w1, b1, w2, b2 = param(hidden, channels, 1, 1), param(hidden), param(channels, hidden, 1, 1), param(channels)
        return (
            (lambda x: kernels.se(x, w1, b1, w2, b2)),
            (lambda x: kernels.se_reference(x, w1, b1, w2, b2)),
            [w1, b1, w2, b2],
        )
    raise ValueError(f"op must be one of {OPS}, got {op!r}")


def count_cases(ops: Sequence[str], dtypes: Sequence[str], shapes: Sequence[Shape], passes: Sequence[str]) -> int:
    """How many rows :func:`iter_benchmarks` yields for these arguments.

    Example:
        >>> count_cases(OPS, ["fp32"], QUICK_SHAPES, PASSES)
        12
    """
    return len(ops) * len(dtypes) * len(shapes) * len(passes)


def check_cases(ops: Sequence[str], dtypes: Sequence[str], shapes: Sequence[Shape], passes: Sequence[str]) -> None:
    """ValueError for any argument :func:`iter_benchmarks` cannot run, before anything is timed.

    Example:
        >>> check_cases(["eca"], ["fp64"], QUICK_SHAPES, PASSES)
        Traceback (most recent call last):
        ...
        ValueError: dtypes must be drawn from bf16, fp16, fp32, got fp64
    """
    check_drawn_from(ops, dtypes, passes, OPS, DTYPES)
    for shape in shapes:
        if len(shape) != 4:
            raise ValueError(f"shapes are {SHAPE_LAYOUT}, got {'x'.join(map(str, shape))}")


def iter_benchmarks(
    ops: Sequence[str] = OPS,
    dtypes: Sequence[str] = ("bf16", "fp32"),
    device: str = "cuda",
    shapes: Sequence[Shape] = RESNET50_STAGES,
    passes: Sequence[str] = PASSES,
    compile: bool = True,
    quick: bool = False,
) -> Iterator[Row]:
    """Time every (dtype, shape, op, pass), yielding one :class:`~.results.Row` each.

    Example:
        >>> rows = list(iter_benchmarks(["simam"], ["fp32"], "cpu", [(1, 4, 4, 4)], ["fwd"], compile=False, quick=True))
        >>> rows[0].op, rows[0].backend, rows[0].backend_reason
        ('simam', 'torch', 'cpu tensor')
    """
    check_cases(ops, dtypes, shapes, passes)
    for dtype_name in dtypes:
        dtype = DTYPES[dtype_name]
        for shape in shapes:
            x = torch.randn(shape, device=device, dtype=dtype).requires_grad_(True)
            grad = torch.randn_like(x)
            tensor_bytes = x.numel() * x.element_size()
            copy_bandwidth = copy_gbps(x, device, quick)
            for op in ops:
                ours, reference, params = _op_and_reference(op, shape[1], dtype, device)
                compiled = torch.compile(reference) if compile else None
                choice = kernels.choose_backend(op, x)
                differentiable = [x, *params]
                for pass_name in passes:
                    eager_ms = median_ms(timed_pass(reference, [x], grad, differentiable, pass_name), device, quick)
                    compile_ms = None
                    if compiled is not None:
                        compile_ms = median_ms(timed_pass(compiled, [x], grad, differentiable, pass_name), device, quick)
                    ours_ms = median_ms(timed_pass(ours, [x], grad, differentiable, pass_name), device, quick)
                    floor = FORWARD_FLOOR[op] + (BACKWARD_FLOOR if pass_name == "fwd+bwd" else 0)
                    yield Row(op, dtype_name, tuple(shape), pass_name, eager_ms, compile_ms, ours_ms, choice.backend,
                              choice.reason, floor * tensor_bytes, copy_bandwidth)
