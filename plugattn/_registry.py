"""A small name -> factory registry shared by attention modules and backbones.

Names are case-insensitive; aliases resolve to one canonical entry; an unknown name raises a
``ValueError`` that lists the closest valid names (the way timm's ``create_attn`` and
``create_model`` behave).
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple


def close_matches(given: str, choices: Iterable[str], n: int = 3) -> List[str]:
    """The entries of ``choices`` closest to ``given``, best first (may be empty).

    Example:
        >>> close_matches("ecaa", ["eca", "se", "cbam"], n=1)
        ['eca']
    """
    choices = list(choices)
    lowered = {c.lower(): c for c in choices}
    found = difflib.get_close_matches(given.lower(), list(lowered), n=n, cutoff=0.4)
    if not found:  # substring hits catch things like "resnet" -> "resnet50"
        found = [c for c in lowered if given.lower() in c or c in given.lower()][:n]
    return [lowered[f] for f in found]


def unknown_name_error(kind: str, given: str, choices: Iterable[str], listing: Optional[str] = None) -> ValueError:
    """A ``ValueError`` naming the unknown ``given`` value, suggesting close matches, then either every
    valid name or, with ``listing``, the command that lists them (for catalogues too long to paste,
    such as timm's thousand models).

    Example:
        >>> str(unknown_name_error("attention", "ecaa", ["eca", "se"]))
        "unknown attention 'ecaa'; did you mean 'eca'? (valid: eca, se)"
        >>> str(unknown_name_error("attention", "ecaa", ["eca", "se"], listing="plugattn list attention"))
        "unknown attention 'ecaa'; did you mean 'eca'? (list them all with: plugattn list attention)"
    """
    choices = sorted(set(choices))
    suggestions = close_matches(given, choices)
    hint = f"; did you mean {', '.join(repr(s) for s in suggestions)}?" if suggestions else ""
    where = f"list them all with: {listing}" if listing else f"valid: {', '.join(choices)}"
    return ValueError(f"unknown {kind} {given!r}{hint} ({where})")


@dataclass
class Entry:
    """One registered factory and what is known about it (paper, venue, year, family)."""

    name: str
    factory: Callable[..., Any]
    aliases: Tuple[str, ...] = ()
    info: Dict[str, Any] = field(default_factory=dict)


class Registry:
    """Maps case-insensitive names (and aliases) to factories.

    Example:
        >>> reg = Registry("attention")
        >>> @reg.register("mine")
        ... def make_mine(channels): return channels
        >>> reg.get("MINE").factory(8)
        8
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: Dict[str, Entry] = {}
        self._aliases: Dict[str, str] = {}

    def register(self, name: str, *, aliases: Iterable[str] = (), **info: Any) -> Callable:
        """Decorator registering a class or factory under ``name`` (and ``aliases``)."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} name must be a non-empty string, got {name!r}")

        def decorator(factory: Callable) -> Callable:
            key = name.lower()
            alias_keys = tuple(a.lower() for a in aliases)
            for k in (key,) + alias_keys:
                if k in self._entries or k in self._aliases:
                    raise ValueError(f"{self.kind} name {k!r} is already registered")
            self._entries[key] = Entry(key, factory, alias_keys, dict(info))
            for alias in alias_keys:
                self._aliases[alias] = key
            return factory

        return decorator

    def get(self, name: str) -> Entry:
        """The entry for ``name`` or an alias of it; ``ValueError`` with suggestions otherwise."""
        if not isinstance(name, str):
            raise TypeError(f"{self.kind} name must be a string, got {type(name).__name__}")
        key = name.lower()
        key = self._aliases.get(key, key)
        if key not in self._entries:
            raise unknown_name_error(self.kind, name, list(self._entries) + list(self._aliases))
        return self._entries[key]

    def names(self, **filters: Any) -> List[str]:
        """Sorted canonical names whose ``info`` matches every filter given (``None`` ignored)."""
        wanted = {k: v for k, v in filters.items() if v is not None}
        return sorted(
            e.name for e in self._entries.values() if all(e.info.get(k) == v for k, v in wanted.items())
        )

    def entries(self) -> List[Entry]:
        """All canonical entries, sorted by name."""
        return [self._entries[n] for n in sorted(self._entries)]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name.lower() in self._entries or name.lower() in self._aliases)
