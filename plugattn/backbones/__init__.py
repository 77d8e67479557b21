"""Backbones: CNNs, vision transformers and MLP-like models, created by name.

Every model file in this package registers its variants with :func:`register_backbone`; all of
them are imported here, so ``create_backbone`` and ``list_backbones`` see every model.
"""
import importlib
import pkgutil

from .registry import BACKBONES, FAMILIES, create_backbone, list_backbones, register_backbone
from .weights import load_external_weights, remap_keys

_INFRASTRUCTURE = {"registry", "weights", "layers", "measured"}

for _info in pkgutil.iter_modules(__path__):
    if _info.name not in _INFRASTRUCTURE and not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")

__all__ = [
    "BACKBONES",
    "FAMILIES",
    "create_backbone",
    "list_backbones",
    "register_backbone",
    "load_external_weights",
    "remap_keys",
]
