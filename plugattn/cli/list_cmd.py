"""`plugattn list`: the attention modules and backbones, with paper, parameter count and (backbones)
multiply-adds.

Backbone figures are read from :mod:`plugattn.backbones.measured` (precomputed, checked by the tests), so
listing builds no model. The registries are imported when the command runs, not when the parser is built.
"""
from __future__ import annotations

import argparse
from typing import Dict, List, Optional

from ..attention.registry import ATTENTION
from ..parameters import count_parameters
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
                "params@64": count_parameters(module),
            }
        )
    return rows


def backbone_rows(family: Optional[str] = None) -> List[Dict[str, object]]:
    """One row per backbone: name, family, class, paper, total parameters, GMACs at its default input
    size (one 3-channel image), from the precomputed :data:`plugattn.backbones.measured.MEASURED`.

    Example:
        >>> [row["gmacs"] for row in backbone_rows("cnn") if row["name"] == "resnet50"]
        ['4.09 @224']
    """
    from ..backbones.measured import MEASURED, measure
    from ..backbones.registry import BACKBONES, list_backbones  # here: `plugattn list attention` needs no backbone

    rows = []
    for name in list_backbones(family):
        entry = BACKBONES.get(name)
        measured = MEASURED.get(name) or measure(name)  # a model registered outside plugattn: build it
        rows.append(
            {
                "name": name,
                "family": entry.info.get("family", ""),
                "class": measured.model_class,
                "paper": _paper(entry.info),
                "params": human_count(measured.params),
                "gmacs": f"{measured.macs / 1e9:.2f} @{measured.input_size}",
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
        print(format_table(backbone_rows(args.family), ["name", "family", "class", "paper", "params", "gmacs"]))
    return 0
