"""Benchmark runners behind ``plugattn bench`` and the ``python -m bench.*`` scripts.

* :mod:`.timing` - median times (``triton.testing.do_bench`` on CUDA), the timed passes, copy bandwidth.
* :mod:`.results` - the row every runner yields and its Markdown table.
* :mod:`.kernels` - SE / ECA / SimAM: eager PyTorch vs ``torch.compile`` vs plugattn.
* :mod:`.window` - Swin window attention, the same comparison (when present).

Example:
    >>> from plugattn.benchmark import kernels as kernel_bench
    >>> rows = kernel_bench.run_benchmarks(["eca"], ["fp32"], "cpu", [(1, 8, 4, 4)], passes=["fwd"],
    ...                                     compile=False, quick=True)
    >>> len(rows)
    1
"""
from .results import COLUMNS, format_table, make_row
from .timing import PASSES, copy_gbps, floor_gbps, median_ms, timed_pass

__all__ = ["COLUMNS", "PASSES", "copy_gbps", "floor_gbps", "format_table", "make_row", "median_ms", "timed_pass"]
