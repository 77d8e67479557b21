"""Backbones: CNNs, vision transformers and MLP-like models, created by name.

Models live by family in ``cnn/``, ``vit/`` and ``mlp/``; pieces they share live in ``layers/``. Every
model file registers its variants with :func:`register_backbone`; all of them are imported here, so
``create_backbone`` and ``list_backbones`` see every model.
"""
import importlib
import pkgutil

from .registry import BACKBONES, FAMILIES, create_backbone, list_backbones, register_backbone
from .weights import load_external_weights, remap_keys

for _family in FAMILIES:
    _package = importlib.import_module(f"{__name__}.{_family}")
    for _info in pkgutil.iter_modules(_package.__path__):
        importlib.import_module(f"{_package.__name__}.{_info.name}")

__all__ = [
    "BACKBONES",
    "FAMILIES",
    "create_backbone",
    "list_backbones",
    "register_backbone",
    "load_external_weights",
    "remap_keys",
]
