"""Checking a runner's (ops, dtypes, passes) before anything is timed."""
from __future__ import annotations

from typing import Iterable, Sequence

from .timing import PASSES


def check_drawn_from(
    ops: Sequence[str], dtypes: Sequence[str], passes: Sequence[str],
    allowed_ops: Iterable[str], allowed_dtypes: Iterable[str], runner: str = "",
) -> None:
    """ValueError naming every op, dtype or pass the runner does not have.

    Example:
        >>> check_drawn_from(["eca"], ["fp64"], ["fwd"], ["eca"], ["fp32"])
        Traceback (most recent call last):
        ...
        ValueError: dtypes must be drawn from fp32, got fp64
    """
    prefix = f"{runner}: " if runner else ""
    for name, values, allowed in (("ops", ops, tuple(allowed_ops)), ("dtypes", dtypes, tuple(allowed_dtypes)),
                                  ("passes", passes, PASSES)):
        unknown = [v for v in values if v not in allowed]
        if unknown:
            raise ValueError(f"{prefix}{name} must be drawn from {', '.join(allowed)}, got {', '.join(map(str, unknown))}")
