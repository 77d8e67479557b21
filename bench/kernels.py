"""Benchmark the SE / ECA / SimAM kernels: eager PyTorch vs ``torch.compile`` vs plugattn.

Run on a GPU (numbers come from this script only - none are committed until measured)::

    python -m bench.kernels                      # ResNet-50 stage shapes, bf16 + fp32, fwd and fwd+bwd
    python -m bench.kernels --ops simam --dtypes bf16 --passes fwd
    python -m bench.kernels --device cpu --quick # tiny smoke run (what the test-suite exercises)

The runner lives in the package (:mod:`plugattn.benchmark.kernels`, also behind ``plugattn bench``);
this script is its command line. Timings are medians (``triton.testing.do_bench`` on CUDA, a median
of repeated calls on CPU). Achieved bandwidth is the op's byte floor divided by the plugattn time,
next to a device-to-device copy measured in the same run (``copy`` GB/s; a copy moves 2 bytes per
element-byte: read + write). Byte floors: see :mod:`plugattn.benchmark.kernels`.
"""
from __future__ import annotations

import argparse
from typing import Dict, List, Optional, Sequence

import torch

from plugattn.benchmark.kernels import DTYPES, OPS, PASSES, QUICK_SHAPES, RESNET50_STAGES, run_benchmarks
from plugattn.benchmark.results import format_table

__all__ = ["format_table", "main", "run_benchmarks"]


def main(argv: Optional[Sequence[str]] = None) -> List[Dict[str, object]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ops", nargs="+", default=list(OPS), choices=OPS)
    parser.add_argument("--dtypes", nargs="+", default=["bf16", "fp32"], choices=sorted(DTYPES))
    parser.add_argument("--passes", nargs="+", default=list(PASSES), choices=PASSES)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="tiny shapes, few repeats (smoke test)")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile column")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda but no GPU is visible; use --device cpu --quick for a smoke run")
    rows = run_benchmarks(
        args.ops, args.dtypes, args.device, QUICK_SHAPES if args.quick else RESNET50_STAGES,
        progress=lambda line: print(f"  {line}", flush=True), passes=args.passes,
        compile=not args.no_compile, quick=args.quick,
    )
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    print(f"\n{device_name}, torch {torch.__version__}\n")
    print(format_table(rows))
    return rows


if __name__ == "__main__":
    main()
