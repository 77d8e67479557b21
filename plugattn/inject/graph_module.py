"""Building a GraphModule that keeps the traced module's whole module tree.

``torch.fx.GraphModule(root, graph)`` copies only the submodules the graph calls, and replaces
their containers by bare ``nn.Module`` objects. For injection that would lose modules the forward
never calls (their state-dict keys would vanish) and the containers' classes. Here the root's
children, parameters and buffers are put back exactly as they were (same objects, same order), so
every qualified name of the original survives and ``model.layer1[0]`` still indexes a Sequential.
``deepcopy`` and ``pickle`` of a GraphModule keep all children, so this survives both.
"""
from __future__ import annotations

from collections import OrderedDict

import torch.fx as fx
import torch.nn as nn


def graph_module_like(root: nn.Module, graph: fx.Graph) -> fx.GraphModule:
    """A GraphModule running ``graph``, named after ``root``'s class, holding ``root``'s full tree.

    Tensors the tracer found as plain attributes (constants) stay reachable as non-persistent
    buffers, so the state dict is unchanged.

    Example:
        >>> model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
        >>> gm = graph_module_like(model, fx.Tracer().trace(model))
        >>> type(gm).__name__, list(gm.state_dict()) == list(model.state_dict())
        ('Sequential', True)
    """
    gm = fx.GraphModule(root, graph, class_name=type(root).__name__)
    added_buffers = OrderedDict((k, v) for k, v in gm._buffers.items() if k not in root._buffers)
    added_modules = OrderedDict((k, v) for k, v in gm._modules.items() if k not in root._modules)
    added_parameters = OrderedDict((k, v) for k, v in gm._parameters.items() if k not in root._parameters)
    gm._modules.clear()
    gm._modules.update(root._modules)
    gm._modules.update(added_modules)
    gm._parameters.clear()
    gm._parameters.update(root._parameters)
    gm._parameters.update(added_parameters)
    gm._buffers.clear()
    gm._buffers.update(root._buffers)
    gm._buffers.update(added_buffers)
    gm._non_persistent_buffers_set = set(root._non_persistent_buffers_set) | set(added_buffers)
    keep_class_name(gm, type(root).__name__)
    return gm


class _KeepClassName:
    """Deepcopy hook: ``GraphModule.__deepcopy__`` re-creates the module as "GraphModule"; this puts
    the original class name back (a module-level class, so the hook itself deep-copies)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, gm: fx.GraphModule) -> None:
        set_class_name(gm, self.name)


def set_class_name(gm: nn.Module, name: str) -> None:
    """Name a GraphModule's per-instance class ``name`` (real classes are never renamed)."""
    if isinstance(gm, fx.GraphModule) and type(gm).__qualname__.endswith("GraphModuleImpl"):
        type(gm).__name__ = name


def keep_class_name(gm: fx.GraphModule, name: str) -> None:
    """Name ``gm`` like the module it replaces, also across ``copy.deepcopy`` where torch allows.

    ``pickle`` re-creates it as "GraphModule"; :func:`inject_attention` renames such modules from
    its report before matching class names again.
    """
    set_class_name(gm, name)
    register = getattr(gm, "_register_deepcopy_hook", None)  # torch >= 2.4
    if register is not None:
        register(_KeepClassName(name))
