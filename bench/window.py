"""Benchmark of Swin window attention: the fused Triton op against the PyTorch ways of computing it.

Usage::

    python -m bench.window                      # GPU, full table
    python -m bench.window --device cpu --quick  # tiny shapes, a smoke run on CPU
    python -m bench.window --json out.json       # also write the rows
    python -m bench.window --stages swin_b_384   # Swin-B at 384 px: 12x12 windows

The runner lives in the package (:mod:`plugattn.benchmark.window`: the implementations compared,
the Swin-T stage shapes, :func:`run_benchmarks`), where ``plugattn bench --op window`` uses it too;
this script is its command line. Numbers are what this machine measured; nothing is filled in.
"""
from __future__ import annotations

import argparse
import json
from typing import List, Optional, Sequence

import torch

from plugattn.benchmark.window import (
    DTYPES,
    IMPLS,
    QUICK_STAGES,
    STAGE_SETS,
    SWIN_B_384_STAGES,
    SWIN_T_STAGES,
    bench_model_step,
    bench_op,
    format_rows,
    make_impl,
    run_benchmarks,
    sdpa_window_attention,
)

__all__ = [
    "DTYPES", "IMPLS", "QUICK_STAGES", "STAGE_SETS", "SWIN_B_384_STAGES", "SWIN_T_STAGES", "bench_model_step", "bench_op", "format_rows", "main",
    "make_impl", "run_benchmarks", "sdpa_window_attention",
]


def main(argv: Optional[Sequence[str]] = None) -> List[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="tiny shapes and few repetitions")
    parser.add_argument("--impls", nargs="+", choices=IMPLS)
    parser.add_argument("--dtypes", nargs="+", default=["bf16", "fp32"], choices=sorted(DTYPES))
    parser.add_argument("--modes", nargs="+", default=["fwd", "fwd+bwd"], choices=["fwd", "fwd+bwd"])
    parser.add_argument("--batch", type=int)
    parser.add_argument("--stages", default="swin_t", choices=sorted(STAGE_SETS),
                        help="op shapes: Swin-T stages (window 7) or Swin-B at 384 px (window 12)")
    parser.add_argument("--model", action="store_true", help="also time a whole Swin-T training step")
    parser.add_argument("--json", help="write the rows to this file")
    args = parser.parse_args(argv)
    rows = run_benchmarks(args.device, args.quick, args.impls, args.dtypes, args.modes, args.batch, args.model,
                          stage_set=args.stages)
    print(format_rows(rows))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=2)
    return rows


if __name__ == "__main__":
    main()
