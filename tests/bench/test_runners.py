"""The benchmark runners behind ``plugattn bench`` (one :class:`Row` type) and the one timer, on CPU."""
from __future__ import annotations

import pytest
import torch

from plugattn.benchmark import Row, kernels, window
from plugattn.benchmark.report import markdown_results, text_table
from plugattn.benchmark.timing import median_ms, median_ms_in_turns


def test_kernel_runner_yields_rows_for_every_op_and_pass():
    rows = list(kernels.iter_benchmarks(kernels.OPS, ["fp32"], "cpu", [(1, 8, 3, 5)], compile=False, quick=True))
    assert [(r.op, r.pass_name) for r in rows] == [(op, p) for op in kernels.OPS for p in ("fwd", "fwd+bwd")]
    assert all(isinstance(r, Row) and r.plugattn_ms > 0 and r.eager_ms > 0 for r in rows)
    assert {(r.backend, r.backend_reason) for r in rows} == {("torch", "cpu tensor")}
    assert all(r.compile_ms is None and r.sdpa_ms is None for r in rows)
    assert text_table(rows, bandwidth=False).count("\n") == len(rows) + 1


def test_window_runner_times_sdpa_too_and_takes_swin_b_windows():
    rows = list(window.iter_benchmarks(window.OPS, ["fp32"], "cpu", [(1, 7, 7, 64)], compile=False, quick=True))
    assert [r.pass_name for r in rows] == ["fwd", "fwd+bwd"]
    assert all(r.sdpa_ms > 0 and r.vs_sdpa == pytest.approx(r.sdpa_ms / r.plugattn_ms) for r in rows)
    assert "| × sdpa |" in markdown_results(rows, bandwidth=False).splitlines()[0]
    # Swin-B at 384 px: window 12, the smallest stage at batch 1 (map = one window, so no shift)
    batch, side, _, channels = window.SWIN_B_384_SHAPES[3]
    (row,) = window.iter_benchmarks(window.OPS, ["fp32"], "cpu", [(1, side, side, channels)], ["fwd"],
                                    compile=False, quick=True, window=12)
    assert row.shape == (1, 12, 12, 1024) and row.plugattn_ms > 0
    with pytest.raises(ValueError, match="window must be an integer >= 1, got 0"):
        window.check_cases(window.OPS, ["fp32"], [(1, 7, 7, 64)], ["fwd"], window=0)


def test_one_timer_on_cpu():
    assert median_ms(lambda: torch.ones(16).sum(), "cpu", quick=True) > 0
    slow, fast = median_ms_in_turns([lambda: torch.ones(4096, 64).sum(1), lambda: None], "cpu", rounds=3)
    assert slow > 0 and fast > 0


def test_row_record_is_the_csv_line():
    row = Row("eca", "fp32", (1, 8, 4, 4), "fwd", 3.0, 1.5, 1.0, "torch", "cpu tensor", 1024, 2.0)
    record = row.record()
    assert record["shape"] == "1x8x4x4" and record["pass"] == "fwd" and record["vs_compile"] == 1.5
    assert record["floor_GBps"] == pytest.approx(1024 / 1.0 / 1e6) and record["backend_reason"] == "cpu tensor"
