"""The one writer of benchmark results: text and Markdown tables, CSV, and the PNG speed-up chart.

``plugattn bench`` writes all four from the :class:`~.results.Row` list; ``bench/device_check.py``
writes its own report table with the same :func:`markdown_table` and :func:`write_csv`.
matplotlib is an optional extra (``pip install "plugattn[bench]"``).
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Callable, List, Mapping, NamedTuple, Optional, Sequence

from ..cli.errors import MissingDependency
from ..cli.table import format_table
from .results import COLUMNS, Row

INSTALL_HINT = 'pip install matplotlib (or: pip install "plugattn[bench]")'


class Column(NamedTuple):
    text: str  # header in the text table
    markdown: str  # header in the Markdown table
    value: Callable[[Row], object]
    spec: str  # format spec; "" for text values
    numeric: bool  # right-aligned in Markdown


def _col(text: str, markdown: str, value: Callable[[Row], object], spec: str = "") -> Column:
    return Column(text, markdown, value, spec, bool(spec))


TIMES = [
    _col("op", "op", lambda r: r.op), _col("dtype", "dtype", lambda r: r.dtype),
    _col("shape", "shape", lambda r: r.shape), _col("pass", "pass", lambda r: r.pass_name),
    _col("eager ms", "eager ms", lambda r: r.eager_ms, ".3f"), _col("compile ms", "compile ms", lambda r: r.compile_ms, ".3f"),
    _col("plugattn ms", "plugattn ms", lambda r: r.plugattn_ms, ".3f"), _col("backend", "backend", lambda r: r.backend),
    _col("x eager", "× eager", lambda r: r.vs_eager, ".2f"), _col("x compile", "× compile", lambda r: r.vs_compile, ".2f"),
]
SDPA = [_col("sdpa ms", "sdpa ms", lambda r: r.sdpa_ms, ".3f"), _col("x sdpa", "× sdpa", lambda r: r.vs_sdpa, ".2f")]
BANDWIDTH = [
    _col("GB/s", "GB/s (floor)", lambda r: r.floor_GBps, ".0f"), _col("copy GB/s", "copy GB/s", lambda r: r.copy_GBps, ".0f"),
    _col("% of copy", "% of copy", lambda r: r.pct_of_copy, ".0f"),
]


def columns_for(rows: Sequence[Row], bandwidth: bool) -> List[Column]:
    """The table's columns: times and speed-ups; SDPA when a row has it (window attention); GB/s on GPU."""
    return TIMES + (SDPA if any(r.sdpa_ms is not None for r in rows) else []) + (BANDWIDTH if bandwidth else [])


def _cell(row: Row, column: Column, shape_joiner: str) -> str:
    value = column.value(row)
    if value is None:
        return "-"
    if isinstance(value, tuple):
        return shape_joiner.join(map(str, value))
    return format(value, column.spec)


def markdown_table(header: Sequence[str], lines: Sequence[Sequence[object]], numeric: Sequence[bool] = ()) -> str:
    """A GitHub Markdown table; ``numeric[i]`` right-aligns column i; '|' inside a cell becomes '/'.

    Example:
        >>> print(markdown_table(["op", "ms"], [["eca", "1.5"]], [False, True]))
        | op | ms |
        |---|---:|
        | eca | 1.5 |
    """
    numeric = list(numeric) + [False] * (len(header) - len(numeric))
    out = ["| " + " | ".join(header) + " |", "|" + "".join("---:|" if n else "---|" for n in numeric)]
    out += ["| " + " | ".join(str(cell).replace("|", "/") for cell in line) + " |" for line in lines]
    return "\n".join(out)


def write_csv(path: Path, columns: Sequence[str], records: Sequence[Mapping[str, object]]) -> Path:
    """``records`` as CSV with header ``columns`` (missing values empty).

    Example:
        >>> write_csv(Path("out.csv"), ["op"], [{"op": "eca"}])  # doctest: +SKIP
    """
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(records)
    return path


def text_table(rows: Sequence[Row], bandwidth: bool = True) -> str:
    """The rows as the aligned text table ``plugattn bench`` prints (shapes ``2x16x8x8``).

    Example:
        >>> row = Row("simam", "fp32", (1, 4, 4, 4), "fwd", 2.0, None, 1.0, "torch", "cpu tensor", 512, 1.0)
        >>> text_table([row], bandwidth=False).splitlines()[2].split()[:4]
        ['simam', 'fp32', '1x4x4x4', 'fwd']
    """
    columns = columns_for(rows, bandwidth)
    records = [{c.text: _cell(r, c, "x") for c in columns} for r in rows]
    return format_table(records, [c.text for c in columns])


def markdown_results(rows: Sequence[Row], bandwidth: bool = True) -> str:
    """The rows as a Markdown table (shapes ``2×16×8×8``); ``bandwidth=False`` (CPU runs) leaves out
    the GB/s columns, which only mean something on a GPU.

    Example:
        >>> row = Row("simam", "fp32", (1, 4, 4, 4), "fwd", 2.0, None, 1.0, "torch", "cpu tensor", 512, 1.0)
        >>> markdown_results([row]).splitlines()[2].split(" | ")[:4]
        ['| simam', 'fp32', '1×4×4×4', 'fwd']
        >>> markdown_results([row], bandwidth=False).splitlines()[0].endswith("× compile |")
        True
    """
    columns = columns_for(rows, bandwidth)
    return markdown_table([c.markdown for c in columns], [[_cell(r, c, "×") for c in columns] for r in rows],
                          [c.numeric for c in columns])


def backend_lines(rows: Sequence[Row]) -> List[str]:
    """One line per distinct (op, backend, reason): what plugattn ran and why.

    Example:
        >>> row = Row("simam", "fp32", (1, 4, 4, 4), "fwd", 2.0, None, 1.0, "torch", "cpu tensor", 512, 1.0)
        >>> backend_lines([row, row])
        ['backend of simam: torch (cpu tensor)']
    """
    return list(dict.fromkeys(f"backend of {r.op}: {r.backend} ({r.backend_reason})" for r in rows))


def write_results_csv(rows: Sequence[Row], path: Path) -> Path:
    """One line per row, the columns :data:`~.results.COLUMNS`."""
    return write_csv(path, COLUMNS, [r.record() for r in rows])


def draw_speedups(rows: Sequence[Row], path: Path, title: str, caveat: Optional[str] = None) -> Path:
    """Draw the speed-up chart to ``path``; raises MissingDependency when matplotlib is absent.

    One bar per row and baseline (eager; ``torch.compile`` and SDPA when timed). The speed-up axis is
    logarithmic, so 0.01x and 100x bars are both visible and equally far from 1x; ``caveat`` (the CPU
    note) is printed on the image itself, under the title. Uses matplotlib's object API (no pyplot), so
    it never touches a global figure or GUI backend.

    Example:
        >>> draw_speedups(rows, Path("speedups.png"), "cpu")  # doctest: +SKIP
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import FuncFormatter
    except ImportError:
        raise MissingDependency(f"matplotlib is not installed; install it with: {INSTALL_HINT}") from None

    def speedups(name: str, value: Callable[[Row], Optional[float]]):
        return name, [float("nan") if value(r) is None else float(value(r)) for r in rows]

    series = [speedups("vs eager PyTorch", lambda r: r.vs_eager)]
    if any(r.vs_compile is not None for r in rows):
        series.append(speedups("vs torch.compile", lambda r: r.vs_compile))
    if any(r.vs_sdpa is not None for r in rows):
        series.append(speedups("vs SDPA", lambda r: r.vs_sdpa))
    bar_height = 0.8 / len(series)

    figure = Figure(figsize=(8, (1.2 if caveat is None else 1.7) + 0.32 * len(rows) * len(series)))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    for index, (name, values) in enumerate(series):
        offsets = [i + (index - (len(series) - 1) / 2) * bar_height for i in range(len(rows))]
        # bars grow from 1x: to the right for a speed-up, to the left for a slow-down
        axes.barh(offsets, [v - 1.0 for v in values], left=1.0, height=bar_height, label=name)
    axes.set_xscale("log")
    positive = [v for _, values in series for v in values if v > 0]
    low, high = min(positive + [1.0]), max(positive + [1.0])
    axes.set_xlim(low / 2, high * 2)  # 1x always inside, a margin either side
    axes.axvline(1.0, color="black", linewidth=0.8)  # speed-up 1: as fast as the baseline
    axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}×"))
    axes.xaxis.set_minor_formatter(FuncFormatter(lambda value, _: ""))
    axes.set_yticks(list(range(len(rows))))
    axes.set_yticklabels([r.label for r in rows], fontsize=8)
    axes.invert_yaxis()
    axes.set_xlabel("speed-up of plugattn (×, log scale, higher is faster)")
    axes.set_title(title if caveat is None else f"{title}\n{caveat}", fontsize=9,
                   color="black" if caveat is None else "darkred")
    axes.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    return path
