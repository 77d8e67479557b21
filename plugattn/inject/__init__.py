"""Plug attention into any backbone: :func:`inject_attention` attaches attention modules at module
boundaries (plugattn forward hooks; the host keeps its class and its own forward code);
:func:`remove_attention` undoes it.

Example:
    >>> import torch, torchvision
    >>> model = inject_attention(torchvision.models.resnet50(), "eca", after="bottleneck",
    ...                          example_input=torch.randn(1, 3, 64, 64))
    >>> type(model).__name__, model.injection_report.params_added
    ('ResNet', 86)
"""
from .api import inject_attention
from .branch import NoResidualError
from .finetune import (
    added_module_names,
    added_parameters,
    host_parameters,
    named_added_parameters,
    named_host_parameters,
)
from .identity import IdentityGate
from .removal import remove_attention
from .report import InjectionReport, InjectionSite, get_injection_report
from .residual import find_residual_add
from .selectors import Selector, resolve_selector
from .tracing import UntraceableError

__all__ = [
    "inject_attention",
    "NoResidualError",
    "remove_attention",
    "InjectionReport",
    "InjectionSite",
    "get_injection_report",
    "find_residual_add",
    "Selector",
    "resolve_selector",
    "UntraceableError",
    "IdentityGate",
    "added_module_names",
    "added_parameters",
    "named_added_parameters",
    "host_parameters",
    "named_host_parameters",
]
