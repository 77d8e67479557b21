"""A progress bar for long command-line runs: tqdm when installed, a plain text bar otherwise."""
from __future__ import annotations

import sys
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")


def progress(items: Iterable[T], total: int, description: str = "") -> Iterator[T]:
    """Yield ``items`` while drawing a progress bar on stderr.

    Example:
        >>> list(progress([1, 2], total=2))  # doctest: +SKIP
        [1, 2]
    """
    try:
        from tqdm import tqdm
    except ImportError:
        tqdm = None
    if tqdm is not None:
        yield from tqdm(items, total=total, desc=description, file=sys.stderr, leave=False)
        return
    width = 30
    for done, item in enumerate(items, start=1):
        filled = width * done // max(total, 1)
        sys.stderr.write(f"\r{description} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        sys.stderr.flush()
        yield item
    sys.stderr.write("\n")
