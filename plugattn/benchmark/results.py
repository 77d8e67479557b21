"""One benchmark result row (the schema every runner returns) and its Markdown table."""
from __future__ import annotations

from typing import Dict, Iterable, Optional, Sequence

from .timing import floor_gbps

Row = Dict[str, object]

# Keys of a row, in table order.
COLUMNS = (
    "op", "dtype", "shape", "pass", "eager_ms", "compile_ms", "plugattn_ms", "backend",
    "vs_eager", "vs_compile", "floor_GBps", "copy_GBps", "pct_of_copy",
)


def make_row(
    op: str,
    dtype: str,
    shape: Sequence[int],
    pass_name: str,
    eager_ms: float,
    compile_ms: Optional[float],
    plugattn_ms: float,
    backend: str,
    floor_bytes: float,
    copy_GBps: float,
) -> Row:
    """A result row: the three times, speed-ups over eager / compile, and bandwidths.

    ``floor_GBps`` is the op's byte floor moved in the plugattn time; ``pct_of_copy`` compares it
    with a same-device copy measured in the same run.

    Example:
        >>> row = make_row("simam", "fp32", (1, 4, 4, 4), "fwd", 2.0, None, 1.0, "torch", 512, 1.0)
        >>> row["vs_eager"], row["vs_compile"]
        (2.0, None)
    """
    achieved = floor_gbps(floor_bytes, plugattn_ms)
    return {
        "op": op, "dtype": dtype, "shape": tuple(shape), "pass": pass_name,
        "eager_ms": eager_ms, "compile_ms": compile_ms, "plugattn_ms": plugattn_ms, "backend": backend,
        "vs_eager": eager_ms / plugattn_ms,
        "vs_compile": None if compile_ms is None else compile_ms / plugattn_ms,
        "floor_GBps": achieved, "copy_GBps": copy_GBps, "pct_of_copy": 100 * achieved / copy_GBps,
    }


def format_table(rows: Iterable[Row], bandwidth: bool = True) -> str:
    """Rows as a Markdown table, speed-ups side by side; ``bandwidth=False`` (CPU runs) leaves out the
    GB/s columns, which only mean something on a GPU.

    Example:
        >>> row = make_row("simam", "fp32", (1, 4, 4, 4), "fwd", 2.0, None, 1.0, "torch", 512, 1.0)
        >>> format_table([row]).splitlines()[2].split(" | ")[:4]
        ['| simam', 'fp32', '1×4×4×4', 'fwd']
        >>> format_table([row], bandwidth=False).splitlines()[0].endswith("× compile |")
        True
    """
    def fmt(value: object, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    header = "| op | dtype | shape | pass | eager ms | compile ms | plugattn ms | backend | × eager | × compile |"
    rule = "|---|---|---|---|---:|---:|---:|---|---:|---:|"
    if bandwidth:
        header += " GB/s (floor) | copy GB/s | % of copy |"
        rule += "---:|---:|---:|"
    lines = [header, rule]
    for r in rows:
        line = (
            f"| {r['op']} | {r['dtype']} | {'×'.join(map(str, r['shape']))} | {r['pass']} | {fmt(r['eager_ms'], '.3f')} | "
            f"{fmt(r['compile_ms'], '.3f')} | {fmt(r['plugattn_ms'], '.3f')} | {r['backend']} | {fmt(r['vs_eager'], '.2f')} | "
            f"{fmt(r['vs_compile'], '.2f')} |"
        )
        if bandwidth:
            line += f" {fmt(r['floor_GBps'], '.0f')} | {fmt(r['copy_GBps'], '.0f')} | {fmt(r['pct_of_copy'], '.0f')} |"
        lines.append(line)
    return "\n".join(lines)
