"""Argument checks shared by every module: each raises early, naming the argument, the value
given and what is allowed."""
from __future__ import annotations

from typing import Iterable, Optional

import torch

from ._registry import close_matches


def check_int(name: str, value: object, minimum: int = 1) -> int:
    """Return ``value`` if it is an int >= ``minimum``, else raise ``ValueError``.

    Example:
        >>> check_int("channels", 64)
        64
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def check_positive_float(name: str, value: object, allow_zero: bool = False) -> float:
    """Return ``value`` as float if it is a finite number > 0 (>= 0 with ``allow_zero``).

    Example:
        >>> check_positive_float("eps", 1e-5)
        1e-05
    """
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = ok and value == value and abs(value) != float("inf")  # not NaN, not inf
    ok = ok and (value >= 0 if allow_zero else value > 0)
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return float(value)


def check_choice(name: str, value: object, choices: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``choices``; else ``ValueError`` with a close match.

    Example:
        >>> check_choice("mode", "l2", ["l1", "l2"])
        'l2'
    """
    choices = list(choices)
    if value in choices:
        return value  # type: ignore[return-value]
    hint = ""
    if isinstance(value, str):
        near = close_matches(value, choices, n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
    raise ValueError(f"{name} must be one of {', '.join(repr(c) for c in choices)}, got {value!r}{hint}")


def check_feature_map(x: torch.Tensor, channels: Optional[int], module: str) -> None:
    """Raise ``ValueError`` unless ``x`` is (B, C, H, W) with C == ``channels`` (when given).

    Skipped while ``torch.fx`` traces (proxies have no shape), so modules stay traceable, and in
    TorchScript (which cannot compile these messages), so modules stay scriptable.

    Example:
        >>> check_feature_map(torch.zeros(1, 8, 4, 4), 8, "SELayer")
    """
    if not torch.jit.is_scripting():
        _check_feature_map_eager(x, channels, module)


def _check_feature_map_eager(x: torch.Tensor, channels: Optional[int], module: str) -> None:
    if isinstance(x, torch.fx.Proxy):
        return
    if x.dim() != 4:
        raise ValueError(f"{module} expects input of shape (B, C, H, W), got shape {tuple(x.shape)}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(
            f"{module} was built for {channels} channels, got input with {x.shape[1]} channels "
            f"(shape {tuple(x.shape)})"
        )
