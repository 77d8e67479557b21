"""Selectors: which modules of a model :func:`inject_attention` puts attention at.

Spellings (see the README's injection section):

=====================================  =====================================================
``"bottleneck"``, ``"BasicBlock"``     class name, case-insensitive (a bare identifier)
``"class:Bottleneck"``                 the same, spelled out
``"layer3.*"``, ``"features.?"``       glob on the qualified name (any string with ``. * ? [``)
``"name:layer1"``                      glob on the qualified name, spelled out (for plain names)
``"re:layer[34]\\.\\d+"``, ``re.compile(...)``  regular expression, full match on the qualified name
``Bottleneck``, ``(Conv2d, Linear)``   a type or tuple of types (``isinstance``)
``lambda name, module: ...``           predicate ``(qualified_name, module) -> bool``
=====================================  =====================================================

The root module never matches. When a module and one of its descendants both match, only the
outermost is a site (``"layer3.*"`` gives the blocks ``layer3.0`` ... , not their convolutions).
Modules inside attention that an earlier :func:`inject_attention` call added never match.
"""
from __future__ import annotations

import collections
import difflib
import fnmatch
import re
from dataclasses import dataclass
from typing import Callable, Iterable, List, Pattern, Tuple, Type, Union

import torch.nn as nn

SelectorSpec = Union[str, Pattern, Type[nn.Module], Tuple[Type[nn.Module], ...], Callable[[str, nn.Module], bool]]

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Selector:
    """A normalized selector: ``kind`` is "class", "name", "regex", "type" or "predicate".

    Example:
        >>> sel = resolve_selector("bottleneck")
        >>> sel.kind, sel.describe()
        ('class', "class name 'bottleneck'")
    """

    kind: str
    value: object
    text: str  # what the user wrote, for messages and for ranking "closest" class names

    def matches(self, qualified_name: str, module: nn.Module) -> bool:
        """Whether the module at ``qualified_name`` is selected."""
        if self.kind == "class":
            return type(module).__name__.lower() == str(self.value).lower()
        if self.kind == "name":
            return fnmatch.fnmatchcase(qualified_name, str(self.value))
        if self.kind == "regex":
            return self.value.fullmatch(qualified_name) is not None  # type: ignore[union-attr]
        if self.kind == "type":
            return isinstance(module, self.value)  # type: ignore[arg-type]
        return bool(self.value(qualified_name, module))  # type: ignore[operator]

    def describe(self) -> str:
        """Human-readable form used in error messages and the report."""
        labels = {
            "class": "class name",
            "name": "name pattern",
            "regex": "regex",
            "type": "type",
            "predicate": "predicate",
        }
        return f"{labels[self.kind]} {self.text!r}" if self.kind != "predicate" else f"predicate {self.text}"


def resolve_selector(spec: SelectorSpec) -> Selector:
    """Turn any accepted selector spelling into a :class:`Selector`; ``ValueError`` otherwise.

    Example:
        >>> resolve_selector("layer3.*").kind, resolve_selector("re:layer\\\\d").kind
        ('name', 'regex')
    """
    if isinstance(spec, str):
        return _resolve_string(spec)
    if isinstance(spec, re.Pattern):
        return Selector("regex", spec, spec.pattern)
    if isinstance(spec, type):
        if not issubclass(spec, nn.Module):
            raise ValueError(f"selector type must be an nn.Module subclass, got {spec.__name__}")
        return Selector("type", spec, spec.__name__)
    if isinstance(spec, tuple):
        if not spec or not all(isinstance(t, type) and issubclass(t, nn.Module) for t in spec):
            raise ValueError(f"a tuple selector must hold nn.Module subclasses, got {spec!r}")
        return Selector("type", spec, "(" + ", ".join(t.__name__ for t in spec) + ")")
    if callable(spec):
        name = getattr(spec, "__name__", type(spec).__name__)
        return Selector("predicate", spec, f"{name}(qualified_name, module)")
    raise ValueError(
        "selector must be a class name, a name pattern ('layer3.*', 're:...'), an nn.Module type or tuple "
        f"of types, or a predicate (qualified_name, module) -> bool; got {type(spec).__name__} {spec!r}"
    )


def _resolve_string(spec: str) -> Selector:
    if not spec.strip():
        raise ValueError("selector must not be an empty string")
    prefix, _, rest = spec.partition(":")
    if rest and prefix in ("class", "name", "re"):
        if prefix == "class":
            return Selector("class", rest, rest)
        if prefix == "name":
            return Selector("name", rest, spec)
        try:
            return Selector("regex", re.compile(rest), spec)
        except re.error as err:
            raise ValueError(f"selector {spec!r} is not a valid regular expression: {err}") from None
    if _IDENTIFIER.match(spec):
        return Selector("class", spec, spec)
    return Selector("name", spec, spec)


def find_matches(model: nn.Module, selector: Selector, excluded: Iterable[str] = ()) -> List[Tuple[str, nn.Module]]:
    """Outermost modules (not the root) that ``selector`` matches, in ``named_modules`` order.

    Modules under any prefix in ``excluded`` (attention added by an earlier injection) are skipped.

    Example:
        >>> model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())
        >>> [name for name, _ in find_matches(model, resolve_selector("Conv2d"))]
        ['0']
    """
    excluded = tuple(excluded)
    matches: List[Tuple[str, nn.Module]] = []
    for name, module in model.named_modules():
        if not name or _is_under(name, excluded):
            continue
        if any(_is_under(name, (outer,)) for outer, _ in matches):
            continue  # an ancestor is already a site
        if selector.matches(name, module):
            matches.append((name, module))
    return matches


def _is_under(name: str, prefixes: Tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def no_match_error(model: nn.Module, selector: Selector, excluded: Iterable[str] = ()) -> ValueError:
    """``ValueError`` naming the selector and listing the model's module classes, closest first.

    Example:
        >>> str(no_match_error(nn.Sequential(nn.Conv2d(3, 8, 3)), resolve_selector("conv")))[:40]
        "selector class name 'conv' matches no mo"
    """
    excluded = tuple(excluded)
    counts = collections.Counter(
        type(m).__name__ for name, m in model.named_modules() if name and not _is_under(name, excluded)
    )
    wanted = selector.text.lower()

    def closeness(class_name: str) -> Tuple[float, int]:
        similarity = difflib.SequenceMatcher(None, wanted, class_name.lower()).ratio()
        if wanted and (wanted in class_name.lower() or class_name.lower() in wanted):
            similarity += 1.0  # substrings first: "conv" -> Conv2d
        return (-similarity, -counts[class_name])

    ordered = sorted(counts, key=closeness)
    listing = ", ".join(f"{c} (x{counts[c]})" for c in ordered)
    hint = ""
    if selector.kind == "class":  # a bare word is a class name; maybe the user meant a module's name
        names = [name for name, _ in model.named_modules() if name and not _is_under(name, excluded)]
        text = selector.text
        pattern = text if text in names else f"*.{text}" if any(n.endswith("." + text) for n in names) else None
        if pattern is not None:
            hint = f"; did you mean name:{pattern}? ('{text}' is a module name, not a class name)"
    return ValueError(
        f"selector {selector.describe()} matches no module of {type(model).__name__}{hint}; "
        f"module classes it contains, closest first: {listing or 'none'}"
    )
