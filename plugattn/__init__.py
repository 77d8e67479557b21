"""plugattn: plug attention modules into any vision backbone, with fused Triton kernels.

Example:
    >>> import plugattn
    >>> "eca" in plugattn.list_attention()
    True
"""
from .attention import *  # noqa: F401,F403  the 15 modules and the attention registry
from .attention import __all__ as _attention_all
from .backbones import create_backbone, list_backbones, load_external_weights
from .inject import InjectionReport, get_injection_report, inject_attention, remove_attention

__version__ = "0.1.0"

__all__ = list(_attention_all) + [
    "create_backbone",
    "list_backbones",
    "load_external_weights",
    "inject_attention",
    "remove_attention",
    "InjectionReport",
    "get_injection_report",
]
