"""remove_attention: the model as it was before :func:`inject_attention`, with the current weights."""
from __future__ import annotations

import copy

import torch.fx as fx
import torch.nn as nn

from .hooks import detach_hooks
from .report import REPORT_ATTRIBUTE, get_injection_report
from .shells import rebuild_from_shell


def remove_attention(model: nn.Module) -> nn.Module:
    """A copy of ``model`` without the attention :func:`inject_attention` added (every call's).

    The result has the original classes (a GraphModule root or a rewritten block becomes the
    original class again), the original qualified names and the current values of every original
    parameter and buffer, so it computes what the original model computes with those weights.

    Example:
        >>> import torch, torchvision
        >>> from plugattn.inject import inject_attention
        >>> original = torchvision.models.resnet18()
        >>> injected = inject_attention(original, "eca", after="basicblock", example_input=torch.randn(1, 3, 64, 64))
        >>> type(remove_attention(injected)).__name__, len(remove_attention(injected).state_dict()) == len(original.state_dict())
        ('ResNet', True)
    """
    report = get_injection_report(model)
    stripped = copy.deepcopy(model)
    for site in reversed(report.sites):
        owner_path, _, child = site.attention.rpartition(".")
        owner = stripped.get_submodule(owner_path)
        if child in owner._modules:
            del owner._modules[child]
        if site.position == "branch":
            parent_path, _, last = site.site.rpartition(".")
            parent = stripped.get_submodule(parent_path)
            block = parent.get_submodule(last)
            setattr(parent, last, rebuild_from_shell(site.original_block, block))
        else:
            detach_hooks(stripped.get_submodule(site.site))
    if isinstance(stripped, fx.GraphModule) and report.original_root is not None:
        stripped = rebuild_from_shell(report.original_root, stripped)
    stripped.__dict__.pop(REPORT_ATTRIBUTE, None)
    return stripped
