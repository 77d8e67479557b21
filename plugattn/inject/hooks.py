"""How attention is attached: forward hooks and pre-hooks that plugattn registers on host modules.

Every site is a module boundary. ``after`` is a forward hook on the matched module (its output goes
through the attention), ``before`` a forward pre-hook (its first input does), and ``branch`` a
forward hook on the module that produces the residual branch inside the block (``layer1.0.bn3`` of
a ResNet bottleneck), so the block's own forward runs it. No forward is rewritten: the host keeps
its classes, methods, attributes, ``self.training`` checks, gradient checkpointing and every other
hook. The hook objects are module-level classes holding the attention module (also a registered
child, so it is in the state dict); ``deepcopy``, ``pickle`` / ``torch.save``, ``torch.compile``,
``torch.export`` and FSDP treat them as any other module state.

Order: plugattn's hooks run first among a module's hooks (in injection order), so every other hook
on that module -- registered before or after injection -- sees the attended tensor, and FSDP's
pre-forward (unshard) hook, which FSDP prepends, still runs before the attention.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import torch
import torch.nn as nn


def to_channels_first(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """(B, H, W, C) -> (B, C, H, W) when ``channels_last``, else ``x`` unchanged."""
    return x.permute(0, 3, 1, 2) if channels_last else x


def from_channels_first(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """(B, C, H, W) -> (B, H, W, C) when ``channels_last``, else ``x`` unchanged."""
    return x.permute(0, 2, 3, 1) if channels_last else x


class AttentionHook:
    """Base of plugattn's hooks: the attention module, the name it is registered under and the layout.

    ``attention_name`` is the attention's qualified name (``"layer1.0.eca"``); ``channels_last``
    says the site's tensor is (B, H, W, C), so the attention runs on a permuted view.
    """

    def __init__(self, attention: nn.Module, attention_name: str, channels_last: bool = False) -> None:
        self.attention = attention
        self.attention_name = attention_name
        self.channels_last = channels_last

    def attend(self, x: torch.Tensor) -> torch.Tensor:
        return from_channels_first(self.attention(to_channels_first(x, self.channels_last)), self.channels_last)


class AttentionAfterHook(AttentionHook):
    """Forward hook: the module's output goes through the attention (``after`` and ``branch``)."""

    def __call__(self, module: nn.Module, args: Tuple[Any, ...], output: Any) -> Any:
        return self.attend(output)


class AttentionBeforeHook(AttentionHook):
    """Forward pre-hook with kwargs: the module's first input goes through the attention.

    ``argument`` names the forward's first parameter, used when the module is called with it as
    a keyword (``self.block(x=x)``).
    """

    def __init__(self, attention: nn.Module, attention_name: str, channels_last: bool = False,
                 argument: Optional[str] = None) -> None:
        super().__init__(attention, attention_name, channels_last)
        self.argument = argument

    def __call__(self, module: nn.Module, args: Tuple[Any, ...], kwargs: Dict[str, Any]):
        if args:
            return (self.attend(args[0]),) + tuple(args[1:]), kwargs
        if self.argument in kwargs:
            return args, {**kwargs, self.argument: self.attend(kwargs[self.argument])}
        raise TypeError(
            f"{type(module).__name__} was called without its input {self.argument!r}; "
            "the attention injected before it has nothing to act on"
        )


HOOK_TYPES = (AttentionAfterHook, AttentionBeforeHook)


def _ours_first(hooks: Dict[int, Any]) -> None:
    """Reorder a hook table in place: plugattn hooks first (in their order), then all others."""
    ours = [key for key, hook in hooks.items() if isinstance(hook, HOOK_TYPES)]
    others = [key for key in hooks if key not in ours]
    for key in ours + others:
        hooks.move_to_end(key)  # type: ignore[attr-defined]


def attach_hook(module: nn.Module, hook: AttentionHook) -> None:
    """Register ``hook`` on ``module`` (a pre-hook for :class:`AttentionBeforeHook`) ahead of other hooks.

    Example:
        >>> conv = nn.Conv2d(3, 4, 1)
        >>> attach_hook(conv, AttentionAfterHook(nn.Identity(), "identity"))
        >>> len(conv._forward_hooks)
        1
    """
    if isinstance(hook, AttentionBeforeHook):
        module.register_forward_pre_hook(hook, with_kwargs=True)
        _ours_first(module._forward_pre_hooks)
    else:
        module.register_forward_hook(hook)
        _ours_first(module._forward_hooks)


def attention_hooks(module: nn.Module):
    """``(table name, hook id, hook)`` for every plugattn hook on ``module``."""
    for table in ("_forward_hooks", "_forward_pre_hooks"):
        for hook_id, hook in list(getattr(module, table).items()):
            if isinstance(hook, HOOK_TYPES):
                yield table, hook_id, hook


def detach_hooks(module: nn.Module) -> int:
    """Remove every plugattn hook from ``module``; returns how many were removed.

    Example:
        >>> conv = nn.Conv2d(3, 4, 1)
        >>> attach_hook(conv, AttentionBeforeHook(nn.Identity(), "identity"))
        >>> detach_hooks(conv), len(conv._forward_pre_hooks)
        (1, 0)
    """
    removed = 0
    for table, hook_id, _ in attention_hooks(module):
        del getattr(module, table)[hook_id]
        for companion in (f"{table}_with_kwargs", f"{table}_always_called"):
            getattr(module, companion, {}).pop(hook_id, None)
        removed += 1
    return removed
