"""What a fine-tuner needs after :func:`inject_attention`: the parameters injection added (for their
own learning rate) and the host's own (to freeze them, or give them a smaller one).

The added modules are the ``attention`` names of the injection report's sites, so this works for
every injection path (graph rewrite, branch rewrite, hooks), for a model that holds an injected model
as a submodule (a classifier wrapper, ``torch.compile``'s ``_orig_mod``), and after re-injection.
Each function returns a list, so one call can feed an optimizer's parameter group:

    optimizer = torch.optim.AdamW([
        {"params": host_parameters(model), "lr": 1e-4},
        {"params": added_parameters(model), "lr": 1e-2},
    ])
"""
from __future__ import annotations

from typing import List, Set, Tuple

import torch.nn as nn

from .report import REPORT_ATTRIBUTE, InjectionReport, get_injection_report
from .placement import qualified


def added_module_names(model: nn.Module) -> List[str]:
    """Qualified names (in ``model``) of the modules inject_attention added, in report order.

    Example:
        >>> import torch, torchvision
        >>> from plugattn.inject import inject_attention
        >>> model = inject_attention(torchvision.models.resnet18(), "se", branch="basicblock",
        ...                          example_input=torch.randn(1, 3, 32, 32), init="identity")
        >>> added_module_names(model)[:2]
        ['layer1.0.se', 'layer1.1.se']
    """
    names = [
        qualified(prefix, site.attention)
        for prefix, module in model.named_modules(remove_duplicate=False)
        if isinstance(getattr(module, REPORT_ATTRIBUTE, None), InjectionReport)
        for site in getattr(module, REPORT_ATTRIBUTE).sites
    ]
    if not names:
        get_injection_report(model)  # raises the "carries no injection report" error
    return list(dict.fromkeys(names))


def named_added_parameters(model: nn.Module) -> List[Tuple[str, nn.Parameter]]:
    """(qualified name, parameter) of every parameter injection added, as ``model.named_parameters()``
    names it (``layer1.0.se.gamma``, ``layer1.0.se.attention.fc1.weight``); each parameter once.

    Example:
        >>> import torch, torchvision
        >>> from plugattn.inject import inject_attention
        >>> model = inject_attention(torchvision.models.resnet18(), "eca", after="basicblock",
        ...                          example_input=torch.randn(1, 3, 32, 32), init="identity")
        >>> [name for name, _ in named_added_parameters(model)][:2]
        ['layer1.0.eca.gamma', 'layer1.0.eca.attention.conv.weight']
    """
    seen: Set[int] = set()
    found = []
    for name in added_module_names(model):
        for parameter_name, parameter in model.get_submodule(name).named_parameters(prefix=name):
            if id(parameter) not in seen:
                seen.add(id(parameter))
                found.append((parameter_name, parameter))
    return found


def added_parameters(model: nn.Module) -> List[nn.Parameter]:
    """Every parameter injection added (see :func:`named_added_parameters`).

    Example:
        >>> import torch, torchvision
        >>> from plugattn.inject import inject_attention
        >>> model = inject_attention(torchvision.models.resnet18(), "eca", after="basicblock",
        ...                          example_input=torch.randn(1, 3, 32, 32))
        >>> sum(p.numel() for p in added_parameters(model)) == model.injection_report.params_added
        True
    """
    return [parameter for _, parameter in named_added_parameters(model)]


def named_host_parameters(model: nn.Module) -> List[Tuple[str, nn.Parameter]]:
    """(qualified name, parameter) of every parameter of ``model`` that injection did not add.

    Example:
        >>> import torch, torchvision
        >>> from plugattn.inject import inject_attention
        >>> host = torchvision.models.resnet18()
        >>> model = inject_attention(host, "eca", after="basicblock", example_input=torch.randn(1, 3, 32, 32))
        >>> [name for name, _ in named_host_parameters(model)] == [name for name, _ in host.named_parameters()]
        True
    """
    added = {id(parameter) for parameter in added_parameters(model)}
    return [(name, parameter) for name, parameter in model.named_parameters() if id(parameter) not in added]


def host_parameters(model: nn.Module) -> List[nn.Parameter]:
    """Every parameter of ``model`` that injection did not add; e.g. freeze the host with
    ``for p in host_parameters(model): p.requires_grad_(False)``.

    Example:
        >>> import torch, torchvision
        >>> from plugattn.inject import inject_attention
        >>> model = inject_attention(torchvision.models.resnet18(), "eca", after="basicblock",
        ...                          example_input=torch.randn(1, 3, 32, 32))
        >>> len(host_parameters(model)) + len(added_parameters(model)) == len(list(model.parameters()))
        True
    """
    return [parameter for _, parameter in named_host_parameters(model)]
