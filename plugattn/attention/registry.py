"""Attention registry: name -> factory, in the manner of ``timm/layers/create_attn.py``.

Every factory takes the channel count first, so any module can be built from a channel count alone.
"""
from __future__ import annotations

from typing import Any, Callable, List, Type, Union

import torch.nn as nn

from .._registry import Registry

ATTENTION = Registry("attention")

AttentionSpec = Union[str, Type[nn.Module], Callable[..., nn.Module]]


def register_attention(name: str, *, aliases=(), **info: Any) -> Callable:
    """Decorator registering an attention class or factory ``(channels, **kwargs) -> nn.Module``.

    ``info`` is free-form metadata shown by ``plugattn list`` (``paper``, ``venue``, ``year``).

    Example:
        >>> import torch.nn as nn
        >>> @register_attention("my_identity_attention")
        ... class MyIdentity(nn.Module):
        ...     def __init__(self, channels): super().__init__()
        ...     def forward(self, x): return x
        >>> type(create_attention("My_Identity_Attention", 8)).__name__
        'MyIdentity'
    """
    return ATTENTION.register(name, aliases=aliases, **info)


def list_attention() -> List[str]:
    """Canonical names of every registered attention module, sorted.

    Example:
        >>> "eca" in list_attention()
        True
    """
    return ATTENTION.names()


def create_attention(attention: AttentionSpec, channels: int, **kwargs: Any) -> nn.Module:
    """Build an attention module for ``channels`` channels from a registry name, a class or a factory.

    Example:
        >>> type(create_attention("eca", 64)).__name__
        'ECALayer'
    """
    if isinstance(attention, str):
        factory = ATTENTION.get(attention).factory
    elif callable(attention):
        factory = attention
    else:
        raise TypeError(
            "attention must be a registry name, an nn.Module class or a factory (channels) -> nn.Module, "
            f"got {type(attention).__name__}"
        )
    module = factory(channels, **kwargs)
    if not isinstance(module, nn.Module):
        raise TypeError(f"attention factory {attention!r} returned {type(module).__name__}, not an nn.Module")
    return module
