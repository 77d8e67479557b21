"""Graph edits of the FX path: a ``call_module`` node for the attention, spliced in at a site."""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch.fx as fx
import torch.nn as nn

from .graph_module import graph_module_like
from .residual import ResidualAdd, find_residual_add
from .tracing import UntraceableError, trace_to_sites


def site_nodes(graph: fx.Graph, target: str) -> List[fx.Node]:
    """The ``call_module`` nodes calling ``target``."""
    return [n for n in graph.nodes if n.op == "call_module" and n.target == target]


def insert_after(graph: fx.Graph, node: fx.Node, attention_target: str) -> fx.Node:
    """Route every user of ``node`` through a call of ``attention_target`` on ``node``'s output."""
    with graph.inserting_after(node):
        attended = graph.call_module(attention_target, (node,))
    node.replace_all_uses_with(attended, delete_user_cb=lambda user: user is not attended)
    return attended


def insert_before(graph: fx.Graph, node: fx.Node, attention_target: str) -> fx.Node:
    """Feed ``node``'s first argument through a call of ``attention_target`` first."""
    if not node.args:
        raise ValueError(f"site {node.target!r} is called without a positional input; 'before' needs one")
    with graph.inserting_before(node):
        attended = graph.call_module(attention_target, (node.args[0],))
    node.update_arg(0, attended)
    return attended


def trace_block(block: nn.Module, name: str) -> Tuple[fx.GraphModule, ResidualAdd]:
    """Trace a residual block's own forward (its children stay opaque calls) and find its skip addition.

    ``ValueError`` names the block when it has no residual addition or cannot be traced.
    """
    try:
        graph = trace_to_sites(block, [])
    except UntraceableError as err:
        raise ValueError(f"'branch' position: block {name!r} ({type(block).__name__}) cannot be traced: {err}") from err
    block_gm = graph_module_like(block, graph)
    residual: Optional[ResidualAdd] = find_residual_add(block_gm.graph)
    if residual is None:
        raise ValueError(
            f"'branch' position: block {name!r} ({type(block).__name__}) has no residual addition "
            "(an add of its input, or its downsampled input, to a branch); use where='after' or 'before'"
        )
    return block_gm, residual


def insert_on_branch(block_gm: fx.GraphModule, residual: ResidualAdd, attention_target: str) -> fx.Node:
    """Apply ``attention_target`` to the residual branch, just before the skip addition."""
    with block_gm.graph.inserting_after(residual.branch):
        attended = block_gm.graph.call_module(attention_target, (residual.branch,))
    residual.node.replace_input_with(residual.branch, attended)
    return attended
