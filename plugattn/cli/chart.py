"""The PNG bar chart of ``plugattn bench``: plugattn's speed-up over eager PyTorch (and over
``torch.compile`` when it was timed) for every benchmark row. matplotlib is an optional extra."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Sequence

from .models import import_optional

INSTALL_HINT = 'pip install matplotlib (or: pip install "plugattn[bench]")'


def row_label(row: Dict[str, object]) -> str:
    """``"eca fp32 2x16x8x8 fwd"``: what a bar stands for.

    Example:
        >>> row_label({"op": "eca", "dtype": "fp32", "shape": (2, 16, 8, 8), "pass": "fwd"})
        'eca fp32 2x16x8x8 fwd'
    """
    return f"{row['op']} {row['dtype']} {'x'.join(map(str, row['shape']))} {row['pass']}"


def draw_speedups(rows: Sequence[Dict[str, object]], path: Path, title: str, caveat: Optional[str] = None) -> Path:
    """Draw the speed-up chart to ``path``; raises MissingDependency when matplotlib is absent.

    The speed-up axis is logarithmic, so 0.01x and 100x bars are both visible and equally far from 1x;
    ``caveat`` (the CPU note) is printed on the image itself, under the title. Uses matplotlib's object
    API (no pyplot), so it never touches a global figure or GUI backend.

    Example:
        >>> draw_speedups(rows, Path("speedups.png"), "cpu")  # doctest: +SKIP
    """
    import_optional("matplotlib", INSTALL_HINT)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    labels = [row_label(r) for r in rows]
    series = [("vs eager PyTorch", [float(r["vs_eager"]) for r in rows])]
    if any(r.get("vs_compile") is not None for r in rows):
        series.append(("vs torch.compile", [float("nan") if r["vs_compile"] is None else float(r["vs_compile"]) for r in rows]))
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
    axes.set_yticklabels(labels, fontsize=8)
    axes.invert_yaxis()
    axes.set_xlabel("speed-up of plugattn (×, log scale, higher is faster)")
    axes.set_title(title if caveat is None else f"{title}\n{caveat}", fontsize=9,
                   color="black" if caveat is None else "darkred")
    axes.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    return path
