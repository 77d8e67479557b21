"""Which implementation each attention module of ``plugattn inject`` runs, and why.

The answer for one call is :func:`plugattn.kernels.module_backend` (the dispatch's own
:func:`~plugattn.kernels.choose_backend`) on the tensor the module actually receives, recorded by a
forward pre-hook; here it is collected per module and summarised per class.
"""
from __future__ import annotations

import collections
import contextlib
from typing import Dict, Iterator, List, Mapping, Tuple

import torch
import torch.nn as nn

from ..kernels.dispatch import module_backend


@contextlib.contextmanager
def record_backends(modules: Mapping[str, nn.Module]) -> Iterator[Dict[str, str]]:
    """Inside the block, every call of ``modules[name]`` records ``"backend (reason)"`` under ``name``.

    Example:
        >>> from plugattn.attention import SimAM
        >>> block = SimAM(4)
        >>> with record_backends({"simam": block}) as seen:
        ...     _ = block(torch.randn(1, 4, 3, 3))
        >>> seen
        {'simam': 'torch (cpu tensor)'}
    """
    seen: Dict[str, str] = {}
    handles = []
    for name, module in modules.items():
        def pre_hook(mod: nn.Module, args: Tuple[object, ...], name: str = name) -> None:
            if args and isinstance(args[0], torch.Tensor):
                seen[name] = str(module_backend(mod, args[0]))
        handles.append(module.register_forward_pre_hook(pre_hook))
    try:
        yield seen
    finally:
        for handle in handles:
            handle.remove()


def summarize(classes: Mapping[str, str], backends: Mapping[str, str]) -> List[Tuple[str, str, int]]:
    """(class, backend, count) per distinct pair, in first-seen order; modules never called say so.

    Example:
        >>> summarize({"a": "ECALayer", "b": "ECALayer"}, {"a": "torch (cpu tensor)", "b": "torch (cpu tensor)"})
        [('ECALayer', 'torch (cpu tensor)', 2)]
    """
    counts: "collections.OrderedDict[Tuple[str, str], int]" = collections.OrderedDict()
    for name, class_name in classes.items():
        key = (class_name, backends.get(name, "not called"))
        counts[key] = counts.get(key, 0) + 1
    return [(cls, backend, n) for (cls, backend), n in counts.items()]
