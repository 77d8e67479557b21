"""`plugattn bench`: time the fused ops against eager PyTorch and ``torch.compile``.

Prints the table (times, speed-ups, and on GPU the achieved GB/s and its fraction of a same-device
copy), writes it as CSV and Markdown, and draws a PNG chart of the speed-ups when matplotlib is
installed. The runners live in :mod:`plugattn.benchmark`.
"""
from __future__ import annotations

import argparse
import csv
import importlib
from pathlib import Path
from types import ModuleType
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from ..benchmark.results import COLUMNS, format_table as markdown_table
from ..benchmark.timing import PASSES
from .chart import INSTALL_HINT, draw_speedups
from .errors import MissingDependency
from .progress import progress
from .table import format_table

# op -> module holding its runner (OPS, QUICK_SHAPES, FULL_SHAPES, SHAPE_LAYOUT, check_cases, count_cases,
# iter_benchmarks)
RUNNERS: Dict[str, str] = {
    "simam": "plugattn.benchmark.kernels",
    "eca": "plugattn.benchmark.kernels",
    "se": "plugattn.benchmark.kernels",
    "window": "plugattn.benchmark.window",
}
DTYPE_NAMES = ("bf16", "fp16", "fp32")
CPU_NOTE = ("note: on CPU the plugattn column is the PyTorch reference (the Triton kernels need CUDA), "
            "so these times only show that the benchmark runs; bandwidth (GB/s, % of copy) is meaningful on GPU only")


CPU_CHART_NOTE = ("CPU run: the plugattn bars time the PyTorch reference (the Triton kernels need CUDA);\n"
                  "they show that the benchmark runs, not how fast the kernels are")


def _load_runner(op: str) -> Optional[ModuleType]:
    """The runner module of ``op``, or None when this install does not have it."""
    try:
        return importlib.import_module(RUNNERS[op])
    except ModuleNotFoundError as missing:
        if missing.name != RUNNERS[op]:
            raise
        return None


def parse_shape(text: str, layout: str = "NxCxHxW") -> Tuple[int, ...]:
    """``"2x16x8x8"`` -> (2, 16, 8, 8): positive sizes joined by 'x', as many as ``layout`` names.

    Example:
        >>> parse_shape("2x16x8x8")
        (2, 16, 8, 8)
    """
    try:
        shape = tuple(int(part) for part in text.lower().split("x"))
    except ValueError:
        shape = ()
    if len(shape) != len(layout.split("x")) or any(v < 1 for v in shape):
        raise ValueError(f"--shapes: each shape is 'quick', 'full' or {layout} (positive sizes joined by 'x'), got {text!r}")
    return shape


# how an explicit --shapes size is read for each op (the runner's SHAPE_LAYOUT, spelled out for --help)
SHAPE_CONVENTIONS = {
    "simam": "NxCxHxW", "eca": "NxCxHxW", "se": "NxCxHxW",
    "window": "BxHxWxC (channels last: Swin's token layout)",
}
SHAPES_HELP = ("'quick' (tiny), 'full' (ResNet-50 / Swin-T stages) or explicit sizes, read per op: "
               + ", ".join(f"{op} {layout}" for op, layout in SHAPE_CONVENTIONS.items())
               + ". OP=SIZE gives one op its own sizes, e.g. --shapes eca=2x64x56x56 window=2x56x56x96 "
               "(default: full on GPU, quick on CPU)")


def _shapes_for(runner: ModuleType, op: str, specs: Sequence[str]) -> List[Tuple[int, ...]]:
    """The shapes ``op`` runs: 'quick', 'full', explicit sizes in the runner's layout, and OP=SIZE for ``op``."""
    shapes: List[Tuple[int, ...]] = []
    for spec in specs:
        target, sep, size = spec.partition("=")
        if sep:
            if target not in RUNNERS:
                raise ValueError(f"--shapes {spec!r}: {target!r} is not an op; use one of {', '.join(RUNNERS)}")
            if target != op:
                continue
            spec = size
        if spec == "quick":
            shapes += list(runner.QUICK_SHAPES)
        elif spec == "full":
            shapes += list(runner.FULL_SHAPES)
        else:
            try:
                shapes.append(parse_shape(spec, runner.SHAPE_LAYOUT))
            except ValueError as error:
                raise ValueError(f"{error} for --op {op}, which reads sizes as {runner.SHAPE_LAYOUT}") from None
    return shapes


def _check_op(runner: ModuleType, op: str, dtypes: Sequence[str], shapes: Sequence[Tuple[int, ...]],
              passes: Sequence[str]) -> None:
    """The runner's own argument check, its error naming the op and how it reads --shapes sizes."""
    try:
        runner.check_cases([op], dtypes, shapes, passes)
    except ValueError as error:
        raise ValueError(f"--op {op}: {error} (it reads --shapes sizes as {runner.SHAPE_LAYOUT}; give it its "
                         f"own with --shapes {op}=SIZE)") from None


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="benchmark the fused kernels against eager PyTorch and torch.compile",
        description="Time plugattn's ops against eager PyTorch and torch.compile; print the table, write "
        "CSV + Markdown, and draw a PNG of the speed-ups. Example: plugattn bench --op eca --dtype bf16",
    )
    parser.add_argument("--op", nargs="+", default=["all"], choices=[*RUNNERS, "all"], help="ops to time (default: all)")
    parser.add_argument("--dtype", nargs="+", choices=DTYPE_NAMES,
                        help="dtypes (default: bf16 fp32 on GPU, fp32 on CPU)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu",
                        help="default: cuda when a GPU is visible")
    parser.add_argument("--pass", dest="passes", nargs="+", choices=PASSES, default=list(PASSES),
                        help="forward only and/or forward+backward (default: both)")
    parser.add_argument("--shapes", nargs="+", metavar="SHAPE", help=SHAPES_HELP)
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                        help="also time torch.compile of the reference (default: on GPU only)")
    parser.add_argument("--out", default="plugattn-bench", metavar="DIR",
                        help="folder for results.csv, results.md and speedups.png (default: ./plugattn-bench)")
    parser.set_defaults(run=run)


def _text_table(rows: Sequence[Dict[str, object]], on_gpu: bool) -> str:
    def fmt(value: object, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    text_rows = []
    for r in rows:
        text = {
            "op": r["op"], "dtype": r["dtype"], "shape": "x".join(map(str, r["shape"])), "pass": r["pass"],
            "eager ms": fmt(r["eager_ms"], ".3f"), "compile ms": fmt(r["compile_ms"], ".3f"),
            "plugattn ms": fmt(r["plugattn_ms"], ".3f"), "backend": r["backend"],
            "x eager": fmt(r["vs_eager"], ".2f"), "x compile": fmt(r["vs_compile"], ".2f"),
            "GB/s": fmt(r["floor_GBps"], ".0f"), "copy GB/s": fmt(r["copy_GBps"], ".0f"),
            "% of copy": fmt(r["pct_of_copy"], ".0f"),
        }
        text_rows.append(text)
    columns = ["op", "dtype", "shape", "pass", "eager ms", "compile ms", "plugattn ms", "backend", "x eager", "x compile"]
    if on_gpu:
        columns += ["GB/s", "copy GB/s", "% of copy"]
    return format_table(text_rows, columns)


def write_csv(rows: Sequence[Dict[str, object]], path: Path) -> None:
    """One line per row, the columns of :data:`plugattn.benchmark.results.COLUMNS`."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(COLUMNS), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "shape": "x".join(map(str, row["shape"]))})


def device_description(device: str) -> str:
    """``"NVIDIA H100 80GB HBM3, torch 2.x, triton 3.x"`` or ``"cpu, torch 2.x"``."""
    if device == "cuda":
        import triton

        return f"{torch.cuda.get_device_name()}, torch {torch.__version__}, triton {triton.__version__}"
    return f"cpu, torch {torch.__version__}"


def _launch_plans(plans: Sequence[tuple], dtypes: Sequence[str], on_gpu: bool) -> str:
    """The Triton launches each timed op makes (this GPU's plan, or an H100's on CPU)."""
    from ..benchmark.plans import format_plans

    device = torch.device("cuda", torch.cuda.current_device()) if on_gpu else "h100"
    return "\n".join(format_plans(runner_ops, shapes, dtypes, device) for _, runner_ops, shapes in plans)


def run(args: argparse.Namespace) -> int:
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda but no GPU is visible; use --device cpu for a (tiny) CPU run")
    on_gpu = args.device == "cuda"
    ops = list(RUNNERS) if "all" in args.op else list(dict.fromkeys(args.op))
    dtypes = args.dtype or (["bf16", "fp32"] if on_gpu else ["fp32"])
    shape_specs = args.shapes or (["full"] if on_gpu else ["quick"])
    use_compile = on_gpu if args.compile is None else args.compile
    quick = not on_gpu and args.shapes is None

    plans = []  # (runner, ops, shapes): each op its own shapes, in its own layout
    for op in ops:
        runner = _load_runner(op)
        if runner is None:
            if "all" in args.op:
                continue
            available = [name for name in RUNNERS if _load_runner(name) is not None]
            raise ValueError(f"the {op!r} benchmark is not part of this plugattn install; "
                             f"choose --op from {', '.join(available)}")
        shapes = _shapes_for(runner, op, shape_specs)
        if not shapes:
            continue  # only other ops were given sizes (OP=SIZE)
        _check_op(runner, op, dtypes, shapes, args.passes)  # fail before the progress bar starts
        if plans and plans[-1][0] is runner and plans[-1][2] == shapes:
            plans[-1][1].append(op)  # same runner, same shapes: one plan, rows ordered as the runner does
        else:
            plans.append((runner, [op], shapes))
    if not plans:
        raise ValueError(f"--shapes {' '.join(shape_specs)} gives no op of --op {' '.join(args.op)} a size")
    total = sum(r.count_cases(o, dtypes, s, args.passes) for r, o, s in plans)

    def all_rows():
        for runner, runner_ops, shapes in plans:
            yield from runner.iter_benchmarks(runner_ops, dtypes, args.device, shapes, args.passes, use_compile, quick)

    rows = list(progress(all_rows(), total=total, description="plugattn bench"))
    description = device_description(args.device)
    print(description)
    print(_text_table(rows, on_gpu))
    if not on_gpu:
        print(CPU_NOTE)
    plan_text = _launch_plans(plans, dtypes, on_gpu)
    print(plan_text)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, out / "results.csv")
    notes = "" if on_gpu else f"\n\n{CPU_NOTE}"
    (out / "results.md").write_text(f"{description}\n\n{markdown_table(rows, bandwidth=on_gpu)}{notes}\n\n```\n{plan_text}\n```\n",
                                    encoding="utf-8")
    written = [out / "results.csv", out / "results.md"]
    try:
        caveat = None if on_gpu else CPU_CHART_NOTE
        written.append(draw_speedups(rows, out / "speedups.png", f"plugattn speed-ups - {description}", caveat))
    except MissingDependency:
        print(f"no chart: matplotlib is not installed; install it with: {INSTALL_HINT}")
    print("wrote " + ", ".join(str(p) for p in written))
    return 0

