"""remove_attention: the model as it was before :func:`inject_attention`, with the current weights."""
from __future__ import annotations

import copy

import torch.nn as nn

from .hooks import detach_hooks
from .report import REPORT_ATTRIBUTE, get_injection_report
from .scripting import disable_scripting


def remove_attention(model: nn.Module) -> nn.Module:
    """A copy of ``model`` without the attention :func:`inject_attention` added (every call's).

    Injection only added children and hooks, so removal deletes exactly those: the result has the
    original classes, qualified names, hooks and current values of every original parameter and
    buffer, and computes what the original model computes with those weights.

    Example:
        >>> import torch, torchvision
        >>> from plugattn.inject import inject_attention
        >>> original = torchvision.models.resnet18()
        >>> injected = inject_attention(original, "eca", after="basicblock", example_input=torch.randn(1, 3, 64, 64))
        >>> restored = remove_attention(injected)
        >>> type(restored).__name__, list(restored.state_dict()) == list(original.state_dict())
        ('ResNet', True)
    """
    report = get_injection_report(model)
    stripped = copy.deepcopy(model)
    for site in reversed(report.sites):
        owner_path, _, child = site.attention.rpartition(".")
        owner = stripped.get_submodule(owner_path)
        owner._modules.pop(child, None)
        detach_hooks(stripped.get_submodule(site.hooked or site.site))
    stripped.__dict__.pop(REPORT_ATTRIBUTE, None)
    disable_scripting(stripped)
    return stripped
