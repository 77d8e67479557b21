"""`plugattn list`: the attention modules and backbones, with paper and parameter count."""
from __future__ import annotations

import argparse
from typing import Dict, List, Optional

import torch

from ..attention.registry import ATTENTION
from .table import format_table, human_count

ATTENTION_CHANNELS = 64


def _paper(info: Dict[str, object]) -> str:
    """'Authors: Title (Venue Year)', with three or more authors shortened to 'First et al.'.

    Example:
        >>> _paper({"paper": "Hu, Shen, Sun: Squeeze-and-Excitation Networks", "venue": "CVPR", "year": 2018})
        'Hu et al.: Squeeze-and-Excitation Networks (CVPR 2018)'
    """
    venue = " ".join(str(info[k]) for k in ("venue", "year") if info.get(k))
    authors, sep, title = str(info.get("paper", "")).partition(": ")
    if sep and authors.count(",") >= 2:
        authors = authors.split(",")[0].strip() + " et al."
    paper = f"{authors}{sep}{title}"
    return f"{paper} ({venue})" if venue else paper


def attention_rows() -> List[Dict[str, object]]:
    """One row per attention module: name, class, paper, parameters at 64 channels.

    Example:
        >>> any(r["name"] == "eca" for r in attention_rows())
        True
    """
    rows = []
    for entry in ATTENTION.entries():
        module = entry.factory(ATTENTION_CHANNELS)
        rows.append(
            {
                "name": entry.name,
                "class": type(module).__name__,
                "paper": _paper(entry.info),
                "params@64": sum(p.numel() for p in module.parameters()),
            }
        )
    return rows


def backbone_rows(family: Optional[str] = None) -> List[Dict[str, object]]:
    """One row per backbone: name, family, class, paper, total parameters.

    Models are built on the ``meta`` device, so counting allocates no memory.

    Example:
        >>> rows = backbone_rows("cnn")  # doctest: +SKIP
    """
    from ..backbones.registry import BACKBONES, list_backbones  # here: `plugattn list attention` needs no backbone

    rows = []
    for name in list_backbones(family):
        entry = BACKBONES.get(name)
        with torch.device("meta"):
            model = entry.factory()
        params = sum(p.numel() for p in model.parameters())
        rows.append(
            {
                "name": name,
                "family": entry.info.get("family", ""),
                "class": type(model).__name__,
                "paper": _paper(entry.info),
                "params": human_count(params),
            }
        )
    return rows


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("list", help="list attention modules or backbones")
    parser.add_argument("what", nargs="?", default="attention", choices=["attention", "backbones"])
    parser.add_argument("--family", choices=["cnn", "vit", "mlp"], help="only backbones of this family")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.what == "attention":
        if args.family:
            raise ValueError("--family applies to 'plugattn list backbones', not to attention")
        print(format_table(attention_rows(), ["name", "class", "paper", "params@64"]))
    else:
        print(format_table(backbone_rows(args.family), ["name", "family", "class", "paper", "params"]))
    return 0
