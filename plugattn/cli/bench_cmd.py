"""`plugattn bench`: time the fused ops against eager PyTorch and ``torch.compile``.

Prints the table (times, speed-ups, and on GPU the achieved GB/s and its fraction of a same-device
copy), writes it as CSV and Markdown, and draws a PNG chart of the speed-ups when matplotlib is
installed. The runners live in :mod:`plugattn.benchmark`, the writer in :mod:`plugattn.benchmark.report`;
each row's backend is :func:`plugattn.kernels.choose_backend`'s answer, printed with its reason.
"""
from __future__ import annotations

import argparse
import importlib
from pathlib import Path
from types import ModuleType
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from ..benchmark.report import INSTALL_HINT, backend_lines, draw_speedups, markdown_results, text_table, write_results_csv
from ..benchmark.timing import PASSES
from .errors import MissingDependency
from .progress import progress

# op -> module holding its runner (OPS, QUICK_SHAPES, FULL_SHAPES, SHAPE_LAYOUT, check_cases, count_cases,
# iter_benchmarks; the window runner also takes ``window``)
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
              passes: Sequence[str], window: int) -> None:
    """The runner's own argument check, its error naming the op and how it reads --shapes sizes."""
    try:
        runner.check_cases([op], dtypes, shapes, passes, **({"window": window} if op == "window" else {}))
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
    parser.add_argument("--window", type=int, default=7, metavar="M",
                        help="window side of --op window (default: 7, Swin-T's; 12 is Swin-B at 384 px)")
    parser.add_argument("--out", default="plugattn-bench", metavar="DIR",
                        help="folder for results.csv, results.md and speedups.png (default: ./plugattn-bench)")
    parser.set_defaults(run=run)


def device_description(device: str) -> str:
    """``"NVIDIA H100 80GB HBM3, torch 2.x, triton 3.x"`` or ``"cpu, torch 2.x"``."""
    if device == "cuda":
        import triton

        return f"{torch.cuda.get_device_name()}, torch {torch.__version__}, triton {triton.__version__}"
    return f"cpu, torch {torch.__version__}"


def _launch_plans(plans: Sequence[tuple], dtypes: Sequence[str], on_gpu: bool, window: int) -> str:
    """The Triton launches each timed op makes (this GPU's plan, or an H100's on CPU)."""
    from ..benchmark.plans import format_plans
    from ..benchmark.window import HEAD_DIM

    def planned(ops: Sequence[str], shapes: Sequence[Tuple[int, ...]]) -> List[Tuple[int, ...]]:
        if "window" not in ops:
            return list(shapes)
        # the window planner's full shape (B, H, W, C, heads, window, shift), as the runner times it
        return [(*s, s[3] // HEAD_DIM, window, window // 2 if max(s[1], s[2]) > window else 0) for s in shapes]

    device = torch.device("cuda", torch.cuda.current_device()) if on_gpu else "h100"
    return "\n".join(format_plans(ops, planned(ops, shapes), dtypes, device) for _, ops, shapes in plans)


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
        _check_op(runner, op, dtypes, shapes, args.passes, args.window)  # fail before the progress bar starts
        if plans and plans[-1][0] is runner and plans[-1][2] == shapes:
            plans[-1][1].append(op)  # same runner, same shapes: one plan, rows ordered as the runner does
        else:
            plans.append((runner, [op], shapes))
    if not plans:
        raise ValueError(f"--shapes {' '.join(shape_specs)} gives no op of --op {' '.join(args.op)} a size")
    total = sum(r.count_cases(o, dtypes, s, args.passes) for r, o, s in plans)

    def all_rows():
        for runner, runner_ops, shapes in plans:
            options = {"window": args.window} if "window" in runner_ops else {}
            yield from runner.iter_benchmarks(runner_ops, dtypes, args.device, shapes, args.passes, use_compile, quick,
                                              **options)

    rows = list(progress(all_rows(), total=total, description="plugattn bench"))
    description = device_description(args.device)
    print(description)
    print(text_table(rows, bandwidth=on_gpu))
    print("\n".join(backend_lines(rows)))
    if not on_gpu:
        print(CPU_NOTE)
    plan_text = _launch_plans(plans, dtypes, on_gpu, args.window)
    print(plan_text)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_results_csv(rows, out / "results.csv")
    notes = "\n".join(["", *backend_lines(rows)] + ([] if on_gpu else ["", CPU_NOTE]))
    (out / "results.md").write_text(f"{description}\n\n{markdown_results(rows, bandwidth=on_gpu)}\n{notes}\n\n"
                                    f"```\n{plan_text}\n```\n", encoding="utf-8")
    written = [out / "results.csv", out / "results.md"]
    try:
        caveat = None if on_gpu else CPU_CHART_NOTE
        written.append(draw_speedups(rows, out / "speedups.png", f"plugattn speed-ups - {description}", caveat))
    except MissingDependency:
        print(f"no chart: matplotlib is not installed; install it with: {INSTALL_HINT}")
    print("wrote " + ", ".join(str(p) for p in written))
    return 0

