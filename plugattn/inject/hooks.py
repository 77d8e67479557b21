"""The hook path: attention applied by forward hooks on the matched modules.

Used when a model cannot be traced (``mode="hook"``, or ``mode="auto"`` after tracing fails). The
hook objects are module-level classes holding the attention module itself, so ``deepcopy``,
``pickle`` / ``torch.save`` and ``torch.compile`` handle them like any other module state (one
deepcopy maps the hook's reference and the registered child to the same copy).
"""
from __future__ import annotations

from typing import Any, Tuple

import torch.nn as nn


class AttentionAfterHook:
    """Forward hook: the module's output goes through ``attention``."""

    def __init__(self, attention: nn.Module) -> None:
        self.attention = attention

    def __call__(self, module: nn.Module, args: Tuple[Any, ...], output: Any) -> Any:
        return self.attention(output)


class AttentionBeforeHook:
    """Forward pre-hook: the module's first positional input goes through ``attention``."""

    def __init__(self, attention: nn.Module) -> None:
        self.attention = attention

    def __call__(self, module: nn.Module, args: Tuple[Any, ...]) -> Tuple[Any, ...]:
        return (self.attention(args[0]),) + tuple(args[1:])


HOOK_TYPES = (AttentionAfterHook, AttentionBeforeHook)


def attach_hook(module: nn.Module, attention: nn.Module, position: str) -> None:
    """Register the hook applying ``attention`` at ``position`` ("after" or "before") of ``module``.

    Example:
        >>> conv = nn.Conv2d(3, 4, 1)
        >>> attach_hook(conv, nn.Identity(), "after")
        >>> len(conv._forward_hooks)
        1
    """
    if position == "after":
        module.register_forward_hook(AttentionAfterHook(attention))
    else:
        module.register_forward_pre_hook(AttentionBeforeHook(attention))


def detach_hooks(module: nn.Module) -> int:
    """Remove every attention hook from ``module``; returns how many were removed.

    Example:
        >>> conv = nn.Conv2d(3, 4, 1)
        >>> attach_hook(conv, nn.Identity(), "before")
        >>> detach_hooks(conv), len(conv._forward_pre_hooks)
        (1, 0)
    """
    removed = 0
    for table in ("_forward_hooks", "_forward_pre_hooks"):
        hooks = getattr(module, table)
        for hook_id in [k for k, hook in hooks.items() if isinstance(hook, HOOK_TYPES)]:
            del hooks[hook_id]
            for companion in (f"{table}_with_kwargs", f"{table}_always_called"):
                getattr(module, companion, {}).pop(hook_id, None)
            removed += 1
    return removed
