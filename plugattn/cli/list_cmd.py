"""`plugattn list`: the attention modules and backbones, with paper, parameter count and (backbones)
multiply-adds.

Everything printed is read from the precomputed :mod:`plugattn._catalog` (plain data, checked by the
tests), so listing imports no torch and builds no model. Only modules registered at run time by the
calling program (the registries are imported already then) are built and measured here.
"""
from __future__ import annotations

import argparse
import sys
from typing import Dict, List, Optional

from .._catalog import ATTENTION_CHANNELS, ATTENTION_FACTS, BACKBONE_CITATIONS, FAMILIES, MEASURED
from .table import format_table, human_count


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
    facts = {name: fact._asdict() for name, fact in ATTENTION_FACTS.items()}
    if "plugattn.attention.registry" in sys.modules:  # the caller may have registered its own modules
        from ..attention.registry import ATTENTION
        from ..parameters import count_parameters

        for entry in ATTENTION.entries():
            if entry.name not in facts:
                module = entry.factory(ATTENTION_CHANNELS)
                facts[entry.name] = {"model_class": type(module).__name__, **entry.info,
                                     "params_at_64": count_parameters(module)}
    rows = []
    for name in sorted(facts):
        fact = facts[name]
        rows.append({"name": name, "class": fact["model_class"], "paper": _paper(fact), "params@64": fact["params_at_64"]})
    return rows


def backbone_rows(family: Optional[str] = None) -> List[Dict[str, object]]:
    """One row per backbone: name, family, class, paper, total parameters, GMACs at its default input
    size (one 3-channel image), from the precomputed :mod:`plugattn._catalog`.

    Example:
        >>> [row["gmacs"] for row in backbone_rows("cnn") if row["name"] == "resnet50"]
        ['4.09 @224']
    """
    if family is not None and family not in FAMILIES:
        from .._validate import check_choice

        check_choice("family", family, FAMILIES)
    cited = {name: c._asdict() for name, c in BACKBONE_CITATIONS.items()}
    measured = dict(MEASURED)
    if "plugattn.backbones.registry" in sys.modules:  # the caller may have registered its own models
        from ..backbones.measured import measure
        from ..backbones.registry import BACKBONES

        for entry in BACKBONES.entries():
            if entry.name not in cited and family in (None, entry.info.get("family")):
                cited[entry.name], measured[entry.name] = dict(entry.info), measure(entry.name)
    rows = []
    for name in sorted(n for n in cited if family in (None, cited[n]["family"])):
        facts = measured[name]
        rows.append(
            {
                "name": name,
                "family": cited[name]["family"],
                "class": facts.model_class,
                "paper": _paper(cited[name]),
                "params": human_count(facts.params),
                "gmacs": f"{facts.macs / 1e9:.2f} @{facts.input_size}",
            }
        )
    return rows


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("list", help="list attention modules or backbones")
    parser.add_argument("what", nargs="?", default="attention", choices=["attention", "backbones"])
    parser.add_argument("--family", choices=FAMILIES, help="only backbones of this family")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.what == "attention":
        if args.family:
            raise ValueError("--family applies to 'plugattn list backbones', not to attention")
        print(format_table(attention_rows(), ["name", "class", "paper", "params@64"]))
    else:
        print(format_table(backbone_rows(args.family), ["name", "family", "class", "paper", "params", "gmacs"]))
    return 0
