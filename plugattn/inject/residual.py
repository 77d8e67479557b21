"""Finding a residual block's skip addition by analysing its traced graph.

``"branch"`` injection puts attention on the residual branch just before the skip addition
(SENet Fig. 3, ECA-Net Fig. 2 and CBAM Fig. 3 all place it there). The addition is found without
knowing the block's class:

* candidates are additions (``a + b``, ``a += b``, ``torch.add``, ``Tensor.add`` / ``add_``) whose
  two operands both derive from the block's input (its first argument);
* the *skip* operand is reached from a *branch point* through a private chain of single-input
  operations (the downsample path: nothing, ``conv -> bn``, ``avgpool -> conv -> bn``, ...), and that
  chain is shorter than the other operand's path from the same branch point;
* preferred: additions whose branch point is the block input itself (identity or downsample skip);
  else ones whose branch point follows the input through a single chain (pre-activation blocks,
  where the shortcut reads the normalized input).

Of the preferred candidates the last one in the graph wins (the block's final residual, not, e.g.,
Res2Net's hierarchical additions inside the branch).
"""
from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Dict, List, Optional, Set

import torch
import torch.fx as fx

ADD_FUNCTIONS = (operator.add, operator.iadd, torch.add, torch.Tensor.add, torch.Tensor.add_)
ADD_METHODS = ("add", "add_")
OPERATION_OPS = ("call_module", "call_function", "call_method")


@dataclass
class ResidualAdd:
    """The skip addition of a block: ``node`` adds ``branch`` (the residual branch) and ``skip``."""

    node: fx.Node
    branch: fx.Node
    skip: fx.Node


def _is_add(node: fx.Node) -> bool:
    if node.op == "call_function":
        return node.target in ADD_FUNCTIONS
    return node.op == "call_method" and node.target in ADD_METHODS


def _operands(node: fx.Node) -> List[object]:
    operands = list(node.args[:2])
    if len(operands) < 2 and "other" in node.kwargs:
        operands.append(node.kwargs["other"])
    return operands


def _depths_from(graph: fx.Graph, source: fx.Node) -> Dict[fx.Node, int]:
    """Longest path (in operations) from ``source`` to every node that derives from it."""
    depth: Dict[fx.Node, int] = {source: 0}
    for node in graph.nodes:  # nodes are stored in topological order
        parents = [p for p in node.all_input_nodes if p in depth]
        if parents and node is not source:
            depth[node] = 1 + max(depth[p] for p in parents)
    return depth


def _ancestors(node: fx.Node) -> Set[fx.Node]:
    seen: Set[fx.Node] = set()
    stack = list(node.all_input_nodes)
    while stack:
        current = stack.pop()
        if current not in seen:
            seen.add(current)
            stack.extend(current.all_input_nodes)
    return seen


def _single_parent(node: fx.Node, depth: Dict[fx.Node, int]) -> Optional[fx.Node]:
    """The one input-derived input of ``node``, or None when it has zero or several."""
    parents = [p for p in node.all_input_nodes if p in depth]
    return parents[0] if len(parents) == 1 else None


def _skip_tier(skip: fx.Node, main: fx.Node, source: fx.Node, depth: Dict[fx.Node, int]) -> int:
    """1: ``skip`` is the input or a private chain from it; 2: a private chain from a point that
    follows the input through a single chain; 0: not a skip operand of ``main``."""
    main_ancestors = _ancestors(main) | {main}
    private = 0
    node = skip
    while node is not source and node not in main_ancestors:
        parent = _single_parent(node, depth)
        if parent is None:
            return 0
        private += 1
        node = parent
    branch_point = node
    if branch_point is main or private >= depth[main] - depth[branch_point]:
        return 0
    if branch_point is source:
        return 1
    while node is not source:  # the branch point must itself follow the input without merges
        node = _single_parent(node, depth)
        if node is None:
            return 0
    return 2


def find_residual_add(graph: fx.Graph) -> Optional[ResidualAdd]:
    """The block's skip addition (see the module docstring), or None if it has none.

    Example:
        >>> import torch.nn as nn
        >>> class Block(nn.Module):
        ...     def __init__(self):
        ...         super().__init__(); self.conv = nn.Conv2d(4, 4, 3, padding=1)
        ...     def forward(self, x):
        ...         return torch.relu(self.conv(x) + x)
        >>> found = find_residual_add(fx.symbolic_trace(Block()).graph)
        >>> found.branch.target, found.skip.name
        ('conv', 'x')
    """
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    if not placeholders:
        return None
    source = placeholders[0]
    depth = _depths_from(graph, source)
    best: Dict[int, ResidualAdd] = {}
    for node in graph.nodes:
        if not _is_add(node):
            continue
        operands = _operands(node)
        if len(operands) != 2 or not all(isinstance(o, fx.Node) and o in depth for o in operands):
            continue
        first, second = operands
        for skip, branch in ((second, first), (first, second)):
            tier = _skip_tier(skip, branch, source, depth)
            if tier:
                best[tier] = ResidualAdd(node, branch, skip)  # later additions overwrite earlier ones
                break
    return best.get(1) or best.get(2)
