"""Symbolic tracing that only goes where the sites are.

The tracer steps into a module only if it contains a site (a matched module); every other
submodule -- and each site itself -- stays one opaque ``call_module`` node. So Python control flow
on shapes (``if x.shape[-1] > ...``) in any module off the path from the root to the sites does not
matter (timm's MobileViT blocks and "same"-padding convolutions stay opaque calls), the graph stays
small, and modules of an injected model can be selected again by a later injection. When the
path to the sites itself cannot be traced, :class:`UntraceableError` says which module failed.
"""
from __future__ import annotations

from typing import Iterable, Optional, Set

import torch.fx as fx
import torch.nn as nn


class UntraceableError(RuntimeError):
    """Raised when the forward code leading to the sites cannot be symbolically traced."""


def ancestors_of(names: Iterable[str]) -> Set[str]:
    """Every proper prefix path of ``names`` (the root is ``""``).

    Example:
        >>> sorted(ancestors_of(["layer1.0"]))
        ['', 'layer1']
    """
    found: Set[str] = set()
    for name in names:
        parts = name.split(".")
        found.update(".".join(parts[:i]) for i in range(len(parts)))
    return found


class SiteTracer(fx.Tracer):
    """Traces into the modules at ``open_names`` only; every other module is a leaf.

    It notes the innermost module whose tracing raised (``failed_module``). Constructed without
    arguments (as ``pickle`` does when it re-traces a GraphModule's code) it keeps every module a leaf.

    Example:
        >>> model = nn.Sequential(nn.Sequential(nn.ReLU()), nn.Sequential(nn.ReLU()))
        >>> graph = SiteTracer({""}).trace(model)
        >>> [n.target for n in graph.nodes if n.op == "call_module"]
        ['0', '1']
    """

    def __init__(self, open_names: Iterable[str] = ()) -> None:
        super().__init__()
        self.open_names: Set[str] = set(open_names)
        self.failed_module: Optional[str] = None

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return module_qualified_name not in self.open_names

    def call_module(self, m, forward, args, kwargs):  # type: ignore[override]
        try:
            return super().call_module(m, forward, args, kwargs)
        except Exception:
            if self.failed_module is None:  # the innermost module records first, as the error unwinds
                self.failed_module = self.path_of_module(m)
            raise


def trace_to_sites(model: nn.Module, sites: Iterable[str]) -> fx.Graph:
    """Trace ``model`` stepping only into the root and the ancestors of ``sites`` (with no sites:
    the root's own forward, every child a leaf).

    Example:
        >>> model = nn.Sequential(nn.Sequential(nn.Conv2d(3, 3, 1), nn.ReLU()), nn.ReLU())
        >>> graph = trace_to_sites(model, ["0.1"])
        >>> [n.target for n in graph.nodes if n.op == "call_module"]
        ['0.0', '0.1', '1']
    """
    tracer = SiteTracer(ancestors_of(sites) | {""})
    try:
        return tracer.trace(model)
    except Exception as err:  # torch.fx raises TraceError, TypeError, RuntimeError, ... on control flow
        reason = f"{type(err).__name__}: {err}".splitlines()[0]
        where = tracer.failed_module
        if not where:
            raise UntraceableError(f"the forward of {type(model).__name__} itself is not traceable ({reason})") from err
        raise UntraceableError(
            f"module {where!r} ({type(model.get_submodule(where)).__name__}), which contains sites, "
            f"is not traceable ({reason})"
        ) from err
