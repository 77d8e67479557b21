"""`plugattn bench` on CPU with tiny shapes: the table, CSV, Markdown and the PNG chart."""
import csv
import importlib.util
import sys

import pytest

from .cli_helpers import assert_user_error, run_cli
from plugattn.benchmark.results import COLUMNS

HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


def test_bench_cpu_writes_table_csv_markdown_png(tmp_path):
    out_dir = tmp_path / "results"
    result = run_cli(["bench", "--op", "eca", "simam", "--device", "cpu", "--shapes", "1x8x4x4", "2x16x3x5", "--pass", "fwd",
                      "--out", str(out_dir)], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines() if line.split()[:1] in (["eca"], ["simam"])]
    expected_cases = [(op, shape, p) for shape in ("1x8x4x4", "2x16x3x5") for op in ("eca", "simam") for p in ("fwd",)]
    assert [(r[0], r[2], r[3]) for r in rows] == expected_cases
    assert all(r[1] == "fp32" and r[7] == "torch" for r in rows)
    assert "on CPU the plugattn column is the PyTorch reference" in result.stdout
    assert "backend of eca: torch (cpu tensor)" in result.stdout.splitlines()

    with open(out_dir / "results.csv", newline="") as handle:
        records = list(csv.DictReader(handle))
    assert list(records[0]) == list(COLUMNS)
    assert [(r["op"], r["shape"], r["pass"]) for r in records] == expected_cases
    for record in records:
        eager, ours = float(record["eager_ms"]), float(record["plugattn_ms"])
        assert eager > 0 and ours > 0 and float(record["vs_eager"]) == pytest.approx(eager / ours)
        assert record["compile_ms"] == ""  # compile is off by default on CPU
        assert record["backend"] == "torch" and record["backend_reason"] == "cpu tensor"

    markdown = (out_dir / "results.md").read_text().splitlines()
    assert markdown[0].startswith("cpu, torch ")
    table = [line for line in markdown if line.startswith("| ")]
    assert len(table) == 1 + len(expected_cases) and "| eca | fp32 | 1×8×4×4 | fwd |" in table[1]

    png = out_dir / "speedups.png"
    if not HAS_MATPLOTLIB:
        pytest.skip("matplotlib is not installed: no chart to check")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_bench_without_matplotlib_still_writes_the_table(cli, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` raise ImportError
    status, out, _ = cli("bench", "--op", "se", "--device", "cpu", "--shapes", "1x32x2x2", "--pass", "fwd",
                         "--out", str(tmp_path))
    assert status == 0
    assert 'no chart: matplotlib is not installed; install it with: pip install matplotlib (or: pip install "plugattn[bench]")' in out
    assert [line.split()[:4] for line in out.splitlines() if line.startswith("se ")] == [["se", "fp32", "1x32x2x2", "fwd"]]
    assert (tmp_path / "results.csv").exists() and (tmp_path / "results.md").exists()
    assert not (tmp_path / "speedups.png").exists()


def test_bench_window_op(cli, tmp_path):
    status, out, err = cli("bench", "--op", "window", "--device", "cpu", "--shapes", "1x9x9x64", "--out", str(tmp_path))
    assert status == 0, err
    rows = [line.split() for line in out.splitlines() if line.startswith("window ")]
    assert [r[:4] for r in rows] == [["window", "fp32", "1x9x9x64", "fwd"], ["window", "fp32", "1x9x9x64", "fwd+bwd"]]
    assert all(r[7] == "torch" and float(r[6]) > 0 and float(r[10]) > 0 for r in rows)  # r[10]: sdpa ms
    assert next(line for line in out.splitlines() if line.startswith("op ")).split()[-4:] == ["sdpa", "ms", "x", "sdpa"]
    status, _, err = cli("bench", "--op", "window", "--device", "cpu", "--shapes", "1x9x9x48", "--out", str(tmp_path))
    assert_user_error(status, err, "C divisible by the head width 32", "C=48")


def test_each_op_reads_shapes_in_its_own_layout(cli, tmp_path):
    """simam/eca/se read NxCxHxW, window BxHxWxC (its --help says so); a size that does not fit an op is an
    error naming the op and its layout, and OP=SIZE gives one op its own sizes."""
    from plugattn.cli import build_parser

    help_text = " ".join(build_parser(load=["bench"])._subparsers._group_actions[0].choices["bench"].format_help().split())
    assert "window BxHxWxC (channels last: Swin's token layout)" in help_text and "eca NxCxHxW" in help_text
    status, _, err = cli("bench", "--op", "all", "--device", "cpu", "--shapes", "4x64x28x28", "--out", str(tmp_path))
    assert_user_error(status, err, "--op window:", "C=28", "reads --shapes sizes as BxHxWxC", "--shapes window=SIZE")
    status, out, err = cli("bench", "--op", "eca", "window", "--device", "cpu", "--pass", "fwd", "--out", str(tmp_path),
                           "--shapes", "eca=1x8x4x4", "window=1x7x7x32")
    assert status == 0, err
    assert [line.split()[:3] for line in out.splitlines() if line.split()[:1] in (["eca"], ["window"])] == [
        ["eca", "fp32", "1x8x4x4"], ["window", "fp32", "1x7x7x32"]]
    status, _, err = cli("bench", "--op", "eca", "--device", "cpu", "--shapes", "conv=1x8x4x4", "--out", str(tmp_path))
    assert_user_error(status, err, "'conv' is not an op")


def test_cpu_tables_have_no_bandwidth_columns(cli, tmp_path):
    status, out, err = cli("bench", "--op", "simam", "--device", "cpu", "--shapes", "1x4x3x3", "--pass", "fwd",
                           "--out", str(tmp_path))
    assert status == 0, err
    header = next(line for line in out.splitlines() if line.startswith("op "))
    assert header.split()[-2:] == ["x", "compile"] and "GB/s" not in header
    markdown = (tmp_path / "results.md").read_text()
    assert "| × compile |\n" in markdown and "GB/s (floor)" not in markdown


def test_chart_uses_a_log_axis_and_carries_the_cpu_caveat(tmp_path):
    if not HAS_MATPLOTLIB:
        pytest.skip("matplotlib is not installed")
    from unittest import mock

    from matplotlib.axes import Axes

    from plugattn.benchmark.report import draw_speedups
    from plugattn.benchmark.results import Row
    from plugattn.cli import bench_cmd

    rows = [Row("eca", "fp32", (1, 8, 4, 4), "fwd", 0.01, None, 1.0, "torch", "cpu tensor", 512, 1.0),
            Row("se", "fp32", (1, 8, 4, 4), "fwd", 30.0, None, 1.0, "torch", "cpu tensor", 768, 1.0)]
    with mock.patch.object(Axes, "set_title", autospec=True, side_effect=Axes.set_title) as title, \
            mock.patch.object(Axes, "set_xscale", autospec=True, side_effect=Axes.set_xscale) as scale:
        draw_speedups(rows, tmp_path / "chart.png", "cpu", bench_cmd.CPU_CHART_NOTE)
    assert scale.call_args.args[1] == "log"
    assert bench_cmd.CPU_CHART_NOTE in title.call_args.args[1]
    assert (tmp_path / "chart.png").stat().st_size > 5000
