"""Benchmark runners behind ``plugattn bench`` (and ``bench/device_check.py``).

* :mod:`.timing` - the one timer (``triton.testing.do_bench`` on CUDA, ``torch.utils.benchmark`` on
  CPU), the timed passes, copy bandwidth.
* :mod:`.results` - :class:`Row`, the one row every runner yields.
* :mod:`.report` - the one writer: text / Markdown table, CSV, PNG chart.
* :mod:`.kernels` - SE / ECA / SimAM: eager PyTorch vs ``torch.compile`` vs plugattn.
* :mod:`.window` - Swin window attention: eager, SDPA, ``torch.compile`` vs plugattn.

Which backend plugattn ran, and why, is :func:`plugattn.kernels.choose_backend`'s answer (each row's
``backend`` and ``backend_reason``).

Example:
    >>> from plugattn.benchmark import kernels as kernel_bench
    >>> rows = list(kernel_bench.iter_benchmarks(["eca"], ["fp32"], "cpu", [(1, 8, 4, 4)], passes=["fwd"],
    ...                                          compile=False, quick=True))
    >>> len(rows), rows[0].backend
    (1, 'torch')
"""
from .results import COLUMNS, Row
from .timing import PASSES, copy_gbps, floor_gbps, median_ms, median_ms_in_turns, timed_pass

__all__ = ["COLUMNS", "PASSES", "Row", "copy_gbps", "floor_gbps", "median_ms", "median_ms_in_turns", "timed_pass"]
