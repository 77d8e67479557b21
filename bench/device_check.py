"""One device check: everything issue 16 asks a GPU run to measure, in one command, into one table.

Usage::

    python -m bench.device_check OUT_DIR            # on a GPU machine (about 5-8 minutes on an H200)
    python -m bench.device_check OUT_DIR --smoke    # on CPU: the same logic on tiny shapes (CI runs it)

Steps, each a row group of the report (a step that fails is reported, and the others still run):

1. **kernel tests with real Triton**: ``pytest tests/kernels -m "not slow"`` in a subprocess with
   ``TRITON_INTERPRET`` unset (tests put their tensors on the GPU when there is one);
2. **SE / ECA / SimAM** at the ResNet-50 stage shapes (batch 64), bf16, forward and forward+backward:
   plugattn vs eager vs ``torch.compile``, bandwidth as a fraction of a device-to-device copy measured
   in the same run (the rows of ``plugattn bench --op simam eca se --dtype bf16``), each row checked
   against the issue's goal;
3. **window attention** at the Swin-T stages (the rows of ``plugattn bench --op window --dtype bf16``:
   plugattn against eager, SDPA, ``torch.compile``) and a whole Swin-T training step with and without
   the kernel;
4. **ResNet-50 + ECA training step** (ECA on every bottleneck branch, as the paper) against plain
   ResNet-50: forward, cross-entropy, backward, SGD step; goal ratio <= 1.05.

Writes ``OUT_DIR/device_check.md`` (one Markdown table, with device, versions and date above it) and
``OUT_DIR/device_check.csv`` (the same rows). Goals (issue 16): SimAM forward >= 85 % of copy and
>= 1.3x compile; ECA >= 80 % and >= 1.5x; SE >= 75 % of its 3-pass floor and >= 1.5x; window
attention forward >= 2x eager and >= 1.2x SDPA, forward+backward >= 1.5x eager.
"""
from __future__ import annotations

import argparse
import datetime
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import torch

from plugattn.benchmark.report import markdown_table, write_csv

COLUMNS = ("step", "case", "measured", "goal", "met")
Row = Dict[str, object]

# (minimum % of copy bandwidth, minimum speed-up over torch.compile), forward pass
KERNEL_GOALS = {"simam": (85.0, 1.3), "eca": (80.0, 1.5), "se": (75.0, 1.5)}
WINDOW_GOALS = {("fwd", "eager"): 2.0, ("fwd", "sdpa"): 1.2, ("fwd+bwd", "eager"): 1.5}
RESNET_ECA_MAX_RATIO = 1.05


def _met(ok: Optional[bool]) -> str:
    return "-" if ok is None else ("yes" if ok else "NO")


def run_kernel_tests(smoke: bool) -> List[Row]:
    """pytest on tests/kernels with real Triton (on CPU under --smoke: one quick selection)."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    if smoke:  # CPU: the interpreter is the only Triton there is; one small selection shows the step works
        env["TRITON_INTERPRET"] = "1"
        selection = ["tests/kernels/test_plan.py", "-k", "byte_models or int64"]
    else:
        selection = ["tests/kernels", "-m", "not slow"]
        try:
            import xdist  # noqa: F401

            selection += ["-n", "8"]
        except ImportError:
            pass
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *selection]
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent)
    seconds = time.perf_counter() - start
    summary = next((line for line in reversed(done.stdout.splitlines()) if re.search(r"\d+ (passed|failed)", line)),
                   done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-300:])
    failed = re.findall(r"^FAILED (\S+)", done.stdout, flags=re.M)
    measured = f"{summary.strip('= ')} ({seconds:.0f} s)" + (f"; failed: {', '.join(failed[:10])}" if failed else "")
    return [{"step": "kernel tests", "case": " ".join(selection), "measured": measured,
             "goal": "all pass", "met": _met(done.returncode == 0)}]


def _bench_rows(runner, smoke: bool, device: str):
    """The rows ``plugattn bench`` gets from ``runner`` for this check: bf16, both passes (fp32, tiny on --smoke)."""
    shapes = runner.QUICK_SHAPES[:1] if smoke else runner.FULL_SHAPES
    return list(runner.iter_benchmarks(runner.OPS, ["fp32" if smoke else "bf16"], device, shapes,
                                       compile=not smoke, quick=smoke))


def _measured(r) -> str:
    """plugattn's time, the baselines', the speed-ups and the bandwidth of one benchmark row."""
    times = [("eager", r.eager_ms, r.vs_eager), ("compile", r.compile_ms, r.vs_compile), ("sdpa", r.sdpa_ms, r.vs_sdpa)]
    timed = [(name, ms, x) for name, ms, x in times if ms is not None]
    return (f"plugattn {r.plugattn_ms:.3f} ms, " + ", ".join(f"{name} {ms:.3f}" for name, ms, _ in timed) + "; "
            + ", ".join(f"{x:.2f}x {name}" for name, _, x in timed)
            + f"; {r.pct_of_copy:.0f} % of copy ({r.copy_GBps:.0f} GB/s)")


def run_kernel_benchmarks(smoke: bool, device: str) -> List[Row]:
    """SE / ECA / SimAM rows (``plugattn bench --op simam eca se``), each forward row checked against its goal."""
    from plugattn.benchmark import kernels

    out: List[Row] = []
    for r in _bench_rows(kernels, smoke, device):
        met: Optional[bool] = None
        goal = "-"
        if r.pass_name == "fwd" and device == "cuda":
            min_pct, min_speedup = KERNEL_GOALS[r.op]
            goal = f">= {min_pct:.0f} % of copy, >= {min_speedup}x compile"
            met = r.pct_of_copy >= min_pct and (r.vs_compile or 0) >= min_speedup
        out.append({"step": f"{r.op} {r.pass_name}", "case": f"{r.dtype} {'x'.join(map(str, r.shape))} ({r.backend})",
                    "measured": _measured(r), "goal": goal, "met": _met(met)})
    return out


def run_window_benchmarks(smoke: bool, device: str) -> List[Row]:
    """Window-attention rows (``plugattn bench --op window``: plugattn against eager / SDPA / compile) and a
    Swin-T training step with the kernel and with the reference."""
    from plugattn.benchmark import window

    out: List[Row] = []
    for r in _bench_rows(window, smoke, device):
        ratios = {"eager": r.vs_eager, "sdpa": r.vs_sdpa}
        checks = [(f">= {need}x {impl}", ratios[impl] >= need) for (mode, impl), need in WINDOW_GOALS.items()
                  if mode == r.pass_name and r.backend == "triton"]
        out.append({"step": f"window {r.pass_name}", "case": f"{r.dtype} {'x'.join(map(str, r.shape))} ({r.backend})",
                    "measured": _measured(r), "goal": ", ".join(c for c, _ in checks) or "-",
                    "met": _met(all(ok for _, ok in checks) if checks else None)})
    batch, size, dtype = (2, 64, "fp32") if smoke else (64, 224, "bf16")
    backends = ("triton", "torch") if device == "cuda" else ("torch",)
    times = {b: window.swin_t_step_ms(b, batch, size, dtype, device, run_s=None if smoke else 3.0, quick=smoke)
             for b in backends}
    for backend, ms in times.items():
        ratio = f"; {ms / times['torch']:.3f}x the torch backend" if backend != "torch" else ""
        out.append({"step": "Swin-T training step", "case": f"{dtype} batch {batch} {size}px ({backend})",
                    "measured": f"{ms:.2f} ms{ratio}", "goal": "-", "met": "-"})
    return out


def run_resnet_eca_step(smoke: bool, device: str) -> List[Row]:
    """Training-step time of ResNet-50 with ECA on every bottleneck branch over plain ResNet-50."""
    import torch.nn.functional as F
    import torchvision

    from plugattn import inject_attention
    from plugattn.benchmark.timing import median_ms

    batch, size = (2, 32) if smoke else (64, 224)
    dev = torch.device(device)
    dtype = torch.float32 if smoke else torch.bfloat16
    images = torch.randn(batch, 3, size, size, device=dev).contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 1000, (batch,), device=dev)
    times = {}
    for name in ("resnet50", "resnet50+eca"):
        torch.manual_seed(0)
        model = torchvision.models.resnet50()
        if name.endswith("eca"):
            model = inject_attention(model, "eca", branch="Bottleneck", example_input=torch.randn(1, 3, size, size))
        model = model.to(dev, memory_format=torch.channels_last).train()
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

        def step() -> None:
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(dev.type, dtype=dtype, enabled=dtype != torch.float32):
                loss = F.cross_entropy(model(images), labels)
            loss.backward()
            optimizer.step()

        times[name] = median_ms(step, dev, quick=smoke, run_s=None if smoke else 3.0)
    ratio = times["resnet50+eca"] / times["resnet50"]
    return [{"step": "ResNet-50+ECA training step",
             "case": f"{str(dtype).replace('torch.', '')} batch {batch} {size}px channels_last",
             "measured": f"{times['resnet50+eca']:.2f} ms vs {times['resnet50']:.2f} ms: {ratio:.3f}x",
             "goal": f"<= {RESNET_ECA_MAX_RATIO}x" if device == "cuda" else "-",
             "met": _met(ratio <= RESNET_ECA_MAX_RATIO) if device == "cuda" else "-"}]


STEPS: Sequence[Callable[..., List[Row]]] = (run_kernel_tests, run_kernel_benchmarks, run_window_benchmarks,
                                             run_resnet_eca_step)


def _guarded(step: Callable[..., List[Row]], *args) -> List[Row]:
    """A step's rows, or one row saying how it failed (the check goes on with the next step)."""
    start = time.perf_counter()
    try:
        rows = step(*args)
    except Exception as error:  # reported in the table: a device check must not stop at the first problem
        rows = [{"step": step.__name__, "case": "-", "measured": f"error: {type(error).__name__}: {error}"[:400],
                 "goal": "runs", "met": "NO"}]
    print(f"{step.__name__}: {time.perf_counter() - start:.0f} s", flush=True)
    return rows


def describe_device(device: str) -> str:
    """One line: device, torch and triton versions, date (UTC)."""
    try:
        import triton

        triton_version = triton.__version__
    except ImportError:
        triton_version = "not installed"
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU (smoke run: no GPU numbers)"
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"{name}, torch {torch.__version__}, triton {triton_version}, {now}"


def format_markdown(rows: Sequence[Row], header: str) -> str:
    """The report: a header line and one table with columns :data:`COLUMNS`."""
    return f"{header}\n\n{markdown_table(COLUMNS, [[r[c] for c in COLUMNS] for r in rows])}\n"


def main(argv: Optional[Sequence[str]] = None) -> List[Row]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out_dir", help="folder for device_check.md and device_check.csv")
    parser.add_argument("--smoke", action="store_true", help="tiny shapes on CPU: checks the command, measures nothing")
    args = parser.parse_args(argv)
    if not args.smoke and not torch.cuda.is_available():
        parser.error("no GPU is visible; run with --smoke for a CPU check of the command itself")
    device = "cpu" if args.smoke else "cuda"
    start = time.perf_counter()
    rows: List[Row] = []
    for step in STEPS:
        rows += _guarded(step, args.smoke) if step is run_kernel_tests else _guarded(step, args.smoke, device)
    header = f"{describe_device(device)}; the whole check took {time.perf_counter() - start:.0f} s"
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "device_check.md").write_text(format_markdown(rows, header), encoding="utf-8")
    write_csv(out / "device_check.csv", COLUMNS, rows)
    print(format_markdown(rows, header))
    print(f"wrote {out / 'device_check.md'} and {out / 'device_check.csv'}")
    return rows


if __name__ == "__main__":
    main()
