"""The ``plugattn`` command: ``list``, ``inject`` and ``bench``.

User errors (unknown names, selectors matching nothing, missing optional packages) print one line
starting with ``error:`` and exit with status 2; no traceback.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Iterable, List, Optional

from .errors import USER_ERRORS

# command -> (module defining add_parser(subparsers) and run, one-line help). A command's module (and
# with it torch) is imported only when that command runs or its own --help is asked for, so
# `plugattn --help` starts in well under a second; tests/cli check these lines equal the modules' own.
COMMANDS = {
    "list": ("list_cmd", "list attention modules or backbones"),
    "inject": ("inject_cmd", "inject attention into a model and report sites, cost and speed"),
    "bench": ("bench_cmd", "benchmark the fused kernels against eager PyTorch and torch.compile"),
}


def build_parser(load: Optional[Iterable[str]] = None) -> argparse.ArgumentParser:
    """The ``plugattn`` parser; ``load`` names the commands whose full parsers are built (all by default,
    the others get their one-line help only).

    Example:
        >>> build_parser(load=[]).parse_args(["list"]).command
        'list'
    """
    load = set(COMMANDS if load is None else load)
    parser = argparse.ArgumentParser(
        prog="plugattn",
        description="Plug attention modules into vision backbones; list, inject and benchmark.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name, (module, help_line) in COMMANDS.items():
        if name in load:
            importlib.import_module(f"{__name__}.{module}").add_parser(subparsers)
        else:
            subparsers.add_parser(name, help=help_line)
    return parser


def _command_in(argv: List[str]) -> List[str]:
    """The command named in ``argv`` (the first argument not starting with '-'), as a list of 0 or 1."""
    first = next((a for a in argv if not a.startswith("-")), None)
    return [first] if first in COMMANDS else []


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the ``plugattn`` console script and ``python -m plugattn``.

    Example:
        >>> main(["list", "attention"])  # doctest: +SKIP
        0
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(load=_command_in(argv)).parse_args(argv)
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
