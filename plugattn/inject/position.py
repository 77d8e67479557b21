"""Where a selector's attention goes: after a module, before it, or on a residual block's branch.

``inject_attention`` and ``plugattn inject`` spell a selector two ways: generically (``selector=`` /
``--after``, with ``where`` choosing the position, "after" by default) or by the position itself
(``before=`` / ``--before``, ``branch=`` / ``--branch``); :func:`resolve_position` is the one rule
for both, so a position given twice must agree.
"""
from __future__ import annotations

from typing import Optional

from .._validate import check_choice

POSITIONS = ("after", "before", "branch")

CONFLICT = "where={where!r} contradicts {spelled}=...; use one of them"


def resolve_position(spelled: Optional[str], where: Optional[str], conflict: str = CONFLICT) -> str:
    """The position of a selector given by the position ``spelled`` (``None``: the generic spelling)
    and an optional ``where``; a ``ValueError`` worded by ``conflict`` (``{where}``, ``{spelled}``)
    when they disagree.

    Example:
        >>> resolve_position(None, None), resolve_position(None, "branch"), resolve_position("before", None)
        ('after', 'branch', 'before')
        >>> resolve_position("before", "branch")
        Traceback (most recent call last):
        ...
        ValueError: where='branch' contradicts before=...; use one of them
    """
    if where is not None:
        check_choice("where", where, POSITIONS)
    if spelled is None:
        return where or "after"
    check_choice("spelled", spelled, POSITIONS)
    if where is not None and where != spelled:
        raise ValueError(conflict.format(where=where, spelled=spelled))
    return spelled
