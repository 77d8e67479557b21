"""The ``plugattn`` command: ``list``, ``inject`` and ``bench``.

User errors (unknown names, selectors matching nothing, missing optional packages) print one line
starting with ``error:`` and exit with status 2; no traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

from . import bench_cmd, inject_cmd, list_cmd
from .models import MissingDependency

USER_ERRORS = (ValueError, MissingDependency, FileNotFoundError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="plugattn",
        description="Plug attention modules into vision backbones; list, inject and benchmark.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    list_cmd.add_parser(subparsers)
    inject_cmd.add_parser(subparsers)
    bench_cmd.add_parser(subparsers)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the ``plugattn`` console script and ``python -m plugattn``.

    Example:
        >>> main(["list", "attention"])  # doctest: +SKIP
        0
    """
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except USER_ERRORS as error:
        message = str(error).strip().strip('"') or type(error).__name__
        print(f"error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        # Python flushes stdout again at exit; point it at /dev/null so that flush cannot fail too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
