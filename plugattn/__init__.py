"""plugattn: plug attention modules into any vision backbone, with fused Triton kernels.

The public names are imported on first use (PEP 562), so ``import plugattn`` and the command line's
``plugattn --help`` do not load torch, the 61 backbones or the injector before they are needed;
``from plugattn import ECALayer`` and ``plugattn.create_backbone`` work as usual.

Example:
    >>> import plugattn
    >>> "eca" in plugattn.list_attention()
    True
"""
from __future__ import annotations

import importlib
from typing import Any, Dict, List

from ._names import ATTENTION_NAMES

__version__ = "0.1.0"

# public name -> the submodule that defines it
_LOCATIONS: Dict[str, str] = {
    **{name: "plugattn.attention" for name in ATTENTION_NAMES},
    "create_backbone": "plugattn.backbones",
    "list_backbones": "plugattn.backbones",
    "load_external_weights": "plugattn.backbones",
    "inject_attention": "plugattn.inject",
    "remove_attention": "plugattn.inject",
    "InjectionReport": "plugattn.inject",
    "get_injection_report": "plugattn.inject",
}

__all__ = list(_LOCATIONS)
# subpackages reachable as attributes (``plugattn.kernels.eca(...)`` after a bare ``import plugattn``)
_SUBMODULES = ("attention", "backbones", "benchmark", "cli", "inject", "kernels", "testing")


def __getattr__(name: str) -> Any:
    """Import a public name's submodule on first access, then cache the name here."""
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    location = _LOCATIONS.get(name)
    if location is None:
        raise AttributeError(f"module 'plugattn' has no attribute {name!r}")
    value = getattr(importlib.import_module(location), name)
    globals()[name] = value
    return value


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(__all__))
