"""Backbone registry: ``create_backbone(name)``, ``list_backbones(family)`` and ``register_backbone``.

Every registered factory has the signature ``(num_classes=1000, in_chans=3, **kwargs) -> nn.Module``;
``info`` records the family (``"cnn"``, ``"vit"``, ``"mlp"``), the paper and the reference parameter count.
"""
from __future__ import annotations

from typing import Any, Callable, List, Optional

import torch.nn as nn

from .._catalog import FAMILIES  # defined there, torch-free: `plugattn list backbones --family` uses it
from .._registry import Registry
from .._validate import check_choice, check_int

BACKBONES = Registry("backbone")


def register_backbone(name: str, *, family: str, aliases=(), **info: Any) -> Callable:
    """Decorator registering a backbone factory under ``name`` in ``family`` (cnn, vit or mlp).

    Example:
        >>> import torch.nn as nn
        >>> @register_backbone("tiny_linear_demo", family="mlp")
        ... def tiny_linear_demo(num_classes=1000, in_chans=3):
        ...     return nn.Linear(in_chans, num_classes)
        >>> create_backbone("tiny_linear_demo", num_classes=4).out_features
        4
    """
    check_choice("family", family, FAMILIES)
    return BACKBONES.register(name, aliases=aliases, family=family, **info)


def list_backbones(family: Optional[str] = None) -> List[str]:
    """Sorted backbone names, optionally only one family (``"cnn"``, ``"vit"`` or ``"mlp"``).

    Example:
        >>> isinstance(list_backbones("cnn"), list)
        True
    """
    if family is not None:
        check_choice("family", family, FAMILIES)
    return BACKBONES.names(family=family)


def create_backbone(name: str, num_classes: Optional[int] = None, in_chans: int = 3, **kwargs: Any) -> nn.Module:
    """Build the backbone registered as ``name`` (case-insensitive). No weights are downloaded.

    ``num_classes=None`` keeps the model's own default: 1000 for ImageNet models, 10 for the CIFAR
    models (``nin_cifar``, ``wide_resnet28_10``, ``pyramidnet110_a48``); 0 gives an identity head.

    Example:
        >>> model = create_backbone("resnet18", num_classes=10)  # doctest: +SKIP
    """
    entry = BACKBONES.get(name)
    check_int("in_chans", in_chans, minimum=1)
    if num_classes is not None:
        kwargs["num_classes"] = check_int("num_classes", num_classes, minimum=0)
    return entry.factory(in_chans=in_chans, **kwargs)
