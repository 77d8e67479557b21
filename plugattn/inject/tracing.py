"""Symbolic tracing of one block's own forward, for reading its residual structure.

Only ``branch`` injection traces, and only the matched block: its children stay opaque
``call_module`` nodes, so Python control flow inside them does not matter. The graph is read, never
run; the block's forward stays the one its class defines. When the block's own forward cannot be
traced, :class:`UntraceableError` says why.
"""
from __future__ import annotations

import torch.fx as fx
import torch.nn as nn


class UntraceableError(RuntimeError):
    """Raised when a block's own forward cannot be symbolically traced."""


class BlockTracer(fx.Tracer):
    """Traces the root module's forward only; every submodule is a leaf.

    Example:
        >>> model = nn.Sequential(nn.Sequential(nn.ReLU()), nn.Sequential(nn.ReLU()))
        >>> graph = BlockTracer().trace(model)
        >>> [n.target for n in graph.nodes if n.op == "call_module"]
        ['0', '1']
    """

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return True


def trace_block(block: nn.Module) -> fx.Graph:
    """The graph of ``block``'s own forward, every child a leaf.

    Example:
        >>> model = nn.Sequential(nn.Conv2d(3, 3, 1), nn.ReLU())
        >>> [n.target for n in trace_block(model).nodes if n.op == "call_module"]
        ['0', '1']
    """
    try:
        return BlockTracer().trace(block)
    except Exception as err:  # torch.fx raises TraceError, TypeError, RuntimeError, ... on control flow
        reason = f"{type(err).__name__}: {err}".splitlines()[0]
        raise UntraceableError(f"the forward of {type(block).__name__} is not traceable ({reason})") from err
