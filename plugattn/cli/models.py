"""Resolving the names a command is given: MODEL (a plugattn backbone name, ``torchvision:NAME`` or
``timm:NAME``) and ATTENTION (a registry name or alias).

Unknown names raise a one-line ``ValueError`` with the closest names and where to list them all
(timm alone has over a thousand models, so the full list is never pasted into the message).
"""
from __future__ import annotations

import importlib
from typing import Tuple

import torch.nn as nn

from .._registry import unknown_name_error
from ..attention.registry import ATTENTION
from ..backbones import create_backbone
from ..backbones.registry import BACKBONES
from .errors import MissingDependency

SOURCES = {
    "torchvision": "pip install torchvision",
    "timm": "pip install timm",
}


def import_optional(package: str, install: str):
    """Import ``package`` or raise :class:`MissingDependency` naming the ``install`` command.

    Example:
        >>> import_optional("math", "pip install math").pi > 3
        True
    """
    try:
        return importlib.import_module(package)
    except ImportError:
        raise MissingDependency(f"{package} is not installed; install it with: {install}") from None


def check_attention(name: str) -> str:
    """``name`` if it is a registered attention name or alias, else a ValueError with close matches.

    Example:
        >>> check_attention("eca")
        'eca'
    """
    if name not in ATTENTION:
        choices = [n for entry in ATTENTION.entries() for n in (entry.name, *entry.aliases)]
        raise unknown_name_error("attention", name, choices, listing="plugattn list attention")
    return name


def build_model(spec: str) -> Tuple[nn.Module, str]:
    """Build the model named by ``spec`` with random weights; returns (model, display name).

    Example:
        >>> model, name = build_model("resnet18")  # doctest: +SKIP
    """
    source, sep, name = spec.partition(":")
    if not sep:
        if spec not in BACKBONES:
            raise unknown_name_error("plugattn backbone", spec, BACKBONES.names(), listing="plugattn list backbones")
        return create_backbone(spec), spec
    if source not in SOURCES:
        raise ValueError(
            f"model source must be 'torchvision:' or 'timm:' (or no prefix for a plugattn backbone), got {source!r}"
        )
    if source == "torchvision":
        models = import_optional("torchvision", SOURCES["torchvision"]).models
        available = models.list_models()
        if name not in available:
            raise unknown_name_error(
                "torchvision model", name, available,
                listing="python -c 'import torchvision; print(torchvision.models.list_models())'")
        return models.get_model(name, weights=None), spec
    timm = import_optional("timm", SOURCES["timm"])
    available = timm.list_models()
    if name not in available:
        raise unknown_name_error("timm model", name, available, listing="python -c 'import timm; print(timm.list_models())'")
    return timm.create_model(name, pretrained=False), spec
