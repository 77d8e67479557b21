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


AXIS_NAMES = ("batch", "channels", "height", "width")


def check_batch_statistics(module: str, x: torch.Tensor, norms: Iterable[tuple]) -> None:
    """Raise ``ValueError`` before a BatchNorm in training mode would see a single value per channel.

    ``norms`` holds ``(batch_norm, axes)`` pairs: the axes of the (B, C, H, W) input ``x`` whose sizes
    multiply to the number of values ``batch_norm`` normalises each channel over. PyTorch's own error
    for that case names neither the module nor the fix; this one names both. Eval mode (running
    statistics) never raises. Skipped while ``torch.fx`` traces.

    Example:
        >>> bn = torch.nn.BatchNorm1d(4)
        >>> check_batch_statistics("SRM", torch.zeros(2, 4, 1, 1), [(bn, (0,))])
        >>> check_batch_statistics("SRM", torch.zeros(1, 4, 1, 1), [(bn, (0,))])
        Traceback (most recent call last):
          ...
        ValueError: SRM in training mode cannot take input of shape (1, 4, 1, 1): its BatchNorm normalises over the batch and would see 1 value per channel; use a batch of at least 2, or call .eval() to normalise with the running statistics
    """
    if isinstance(x, torch.fx.Proxy):
        return
    for norm, axes in norms:
        values = 1
        for axis in axes:
            values *= x.shape[axis]
        if norm.training and values <= 1:
            over = "the batch" if tuple(axes) == (0,) else " × ".join(AXIS_NAMES[a] for a in axes)
            others = [AXIS_NAMES[a] for a in axes if a != 0]
            larger = f" or a larger {' × '.join(others)}" if others else ""
            raise ValueError(
                f"{module} in training mode cannot take input of shape {tuple(x.shape)}: its BatchNorm normalises "
                f"over {over} and would see {values} value per channel; use a batch of at least 2{larger}, "
                f"or call .eval() to normalise with the running statistics"
            )


def largest_divisor_at_most(value: int, limit: int) -> int:
    """The largest divisor of ``value`` that is <= ``limit`` (a default group count that always fits).

    Example:
        >>> largest_divisor_at_most(48, 32), largest_divisor_at_most(12, 8), largest_divisor_at_most(7, 8)
        (24, 6, 7)
    """
    for candidate in range(min(value, limit), 0, -1):
        if value % candidate == 0:
            return candidate
    return 1
