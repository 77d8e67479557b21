"""Where a new attention module is registered, and under which name.

The module becomes a child of the matched module: ``layer1.0`` gets ``layer1.0.eca``. A container
(``nn.Sequential``, ``nn.ModuleList``, ``nn.ModuleDict`` or a subclass, e.g. torchvision's
``Conv2dNormActivation`` or DenseNet's ``_DenseBlock``) typically runs every child in its forward,
so a child there would be applied twice; the attention then goes to the nearest ancestor that is not
a container, named by the remaining path: ``features.1`` -> ``features_1_eca`` on the
root. A name already taken gets ``_1``, ``_2``, ... appended. Original parameter and buffer names
never change: only new names are added.
"""
from __future__ import annotations

import re
from typing import Tuple

import torch.nn as nn

from ..attention.registry import ATTENTION, AttentionSpec


def attention_base_name(attention: AttentionSpec) -> str:
    """Readable name for modules built from ``attention``: the registry name, else the class or
    factory name in snake_case, else ``"attention"``.

    Example:
        >>> attention_base_name("ECA_layer"), attention_base_name(nn.BatchNorm2d)
        ('eca', 'batch_norm2d')
    """
    if isinstance(attention, str):
        return ATTENTION.get(attention).name
    raw = getattr(attention, "__name__", "")
    if not raw.isidentifier() or raw == "<lambda>":
        return "attention"
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", raw).lower()
    return snake.strip("_") or "attention"


def unique_child_name(owner: nn.Module, wanted: str) -> str:
    """``wanted``, or ``wanted_1``, ``wanted_2``, ... : the first that is no attribute of ``owner``."""
    name, index = wanted, 0
    while hasattr(owner, name):  # also avoids methods and plain attributes of the owner
        index += 1
        name = f"{wanted}_{index}"
    return name


# containers whose forward (their own or a subclass's) usually iterates over every child
CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


def choose_owner(root: nn.Module, site: str, base: str) -> Tuple[str, str]:
    """(owner path, child name) for the attention of ``site``; nothing is registered yet.

    Example:
        >>> model = nn.Sequential(nn.Sequential(nn.Conv2d(3, 8, 1)))
        >>> choose_owner(model, "0", "eca")
        Traceback (most recent call last):
        ...
        ValueError: cannot place attention for site '0': it and every ancestor are containers (Sequential, ModuleList, ModuleDict), which would run the attention as one more layer
    """
    owner_path = site
    while isinstance(root.get_submodule(owner_path), CONTAINERS):
        if not owner_path:
            raise ValueError(
                f"cannot place attention for site {site!r}: it and every ancestor are containers "
                "(Sequential, ModuleList, ModuleDict), which would run the attention as one more layer"
            )
        owner_path = owner_path.rpartition(".")[0]
    relative = site[len(owner_path):].lstrip(".")
    wanted = f"{relative.replace('.', '_')}_{base}" if relative else base
    return owner_path, unique_child_name(root.get_submodule(owner_path), wanted)


def qualified(owner_path: str, child: str) -> str:
    """``owner_path.child`` (just ``child`` at the root)."""
    return f"{owner_path}.{child}" if owner_path else child
