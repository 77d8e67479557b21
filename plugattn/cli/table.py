"""Plain-text tables for the command line (Markdown ones: :mod:`plugattn.benchmark.report`)."""
from __future__ import annotations

from typing import Dict, List, Sequence


def format_table(rows: Sequence[Dict[str, object]], columns: Sequence[str]) -> str:
    """Left-aligned text table with a header rule.

    Example:
        >>> print(format_table([{"name": "eca", "params": 3}], ["name", "params"]))
        name  params
        ----  ------
        eca   3
    """
    cells: List[List[str]] = [[str(c) for c in columns]]
    cells += [[str(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def human_count(n: float) -> str:
    """Compact count: 25557032 -> '25.56M'.

    Example:
        >>> human_count(25557032), human_count(580)
        ('25.56M', '580')
    """
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return f"{int(n)}"
