"""Which implementation each attention module runs: a Triton kernel or PyTorch.

Four modules have fused kernels (``SELayer``, ``ECALayer``, ``SimAM``, ``WindowAttention2d``); for
them the backend is what :func:`plugattn.kernels.dispatch.resolve_backend` decides for the tensor
the module actually receives (recorded by a forward pre-hook). Every other module is plain PyTorch.
"""
from __future__ import annotations

import collections
import contextlib
from typing import Dict, Iterator, List, Mapping, Optional, Tuple, Type

import torch
import torch.nn as nn

from ..attention import ECALayer, SELayer, SimAM, WindowAttention2d
from ..kernels.dispatch import resolve_backend
from ..kernels.window_attention_kernel import triton_unsupported_reason

# Module class -> the kernel op it dispatches (the ``op`` name resolve_backend reports errors with).
KERNEL_OPS: Dict[Type[nn.Module], str] = {
    SELayer: "se",
    ECALayer: "eca",
    SimAM: "simam",
    WindowAttention2d: "window_attention",
}
NO_KERNEL = "torch (no kernel)"


def kernel_op(module: nn.Module) -> Optional[str]:
    """The kernel op ``module`` dispatches, or None for modules without a kernel.

    Example:
        >>> kernel_op(ECALayer(64)), kernel_op(nn.ReLU())
        ('eca', None)
    """
    for cls, op in KERNEL_OPS.items():
        if isinstance(module, cls):
            return op
    return None


def module_backend(module: nn.Module, x: torch.Tensor) -> str:
    """``"triton"``, ``"torch"`` or ``"torch (no kernel)"``: what ``module(x)`` runs.

    Example:
        >>> module_backend(SimAM(8), torch.randn(1, 8, 4, 4))  # a CPU tensor: the reference
        'torch'
    """
    op = kernel_op(module)
    if op is None:
        return NO_KERNEL
    backend = resolve_backend(x, None, op)
    if backend == "triton" and isinstance(module, WindowAttention2d):
        # window_attention falls back to PyTorch outside the kernel's tile limits
        if triton_unsupported_reason(module.window_size, module.head_dim) is not None:
            return "torch"
    return backend


@contextlib.contextmanager
def record_backends(modules: Mapping[str, nn.Module]) -> Iterator[Dict[str, str]]:
    """Inside the block, every call of ``modules[name]`` records its backend under ``name``.

    Example:
        >>> block = SimAM(4)
        >>> with record_backends({"simam": block}) as seen:
        ...     _ = block(torch.randn(1, 4, 3, 3))
        >>> seen
        {'simam': 'torch'}
    """
    seen: Dict[str, str] = {}
    handles = []
    for name, module in modules.items():
        def pre_hook(mod: nn.Module, args: Tuple[object, ...], name: str = name) -> None:
            if args and isinstance(args[0], torch.Tensor):
                seen[name] = module_backend(mod, args[0])
        handles.append(module.register_forward_pre_hook(pre_hook))
    try:
        yield seen
    finally:
        for handle in handles:
            handle.remove()


def summarize(classes: Mapping[str, str], backends: Mapping[str, str]) -> List[Tuple[str, str, int]]:
    """(class, backend, count) per distinct pair, in first-seen order; modules never called say so.

    Example:
        >>> summarize({"a": "ECALayer", "b": "ECALayer"}, {"a": "torch", "b": "torch"})
        [('ECALayer', 'torch', 2)]
    """
    counts: "collections.OrderedDict[Tuple[str, str], int]" = collections.OrderedDict()
    for name, class_name in classes.items():
        key = (class_name, backends.get(name, "not called"))
        counts[key] = counts.get(key, 0) + 1
    return [(cls, backend, n) for (cls, backend), n in counts.items()]
