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
import torch.nn as nn

ADD_FUNCTIONS = (operator.add, operator.iadd, torch.add, torch.Tensor.add, torch.Tensor.add_)
ADD_METHODS = ("add", "add_")


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


def _chain_to(node: fx.Node, stop: Set[fx.Node], depth: Dict[fx.Node, int]) -> Optional[List[fx.Node]]:
    """The private chain of single-input operations from ``node`` back to the first node in
    ``stop`` (that node last), or None when an operation on the way merges several inputs."""
    chain = [node]
    while chain[-1] not in stop:
        parent = _single_parent(chain[-1], depth)
        if parent is None:
            return None
        chain.append(parent)
    return chain


def _weight(chain: List[fx.Node], root: Optional[nn.Module]) -> int:
    """Leaf modules run along ``chain`` (an operation that is no module call counts 1)."""
    total = 0
    for node in chain:
        if node.op == "call_module" and root is not None:
            module = root.get_submodule(str(node.target))
            total += max(1, sum(1 for m in module.modules() if not m._modules))
        else:
            total += 1
    return total


def _skip_tier(skip: fx.Node, main: fx.Node, source: fx.Node, depth: Dict[fx.Node, int],
               root: Optional[nn.Module] = None) -> int:
    """1: ``skip`` is the input or a private chain from it; 2: a private chain from a point that
    follows the input through a single chain; 0: not a skip operand of ``main``.

    Of two private chains of the same length (RegNet's ``proj(x) + f(x)``), the one running fewer
    leaf modules is the skip."""
    main_ancestors = _ancestors(main) | {main}
    chain = _chain_to(skip, main_ancestors | {source}, depth)
    if chain is None:
        return 0
    private, branch_point = len(chain) - 1, chain[-1]
    if branch_point is main or private > depth[main] - depth[branch_point]:
        return 0
    if private == depth[main] - depth[branch_point]:
        main_chain = _chain_to(main, {branch_point}, depth)
        if main_chain is None or _weight(chain[:-1], root) >= _weight(main_chain[:-1], root):
            return 0
    if branch_point is source:
        return 1
    node = branch_point
    while node is not source:  # the branch point must itself follow the input without merges
        node = _single_parent(node, depth)
        if node is None:
            return 0
    return 2


def find_residual_add(graph: fx.Graph, root: Optional[nn.Module] = None) -> Optional[ResidualAdd]:
    """The block's skip addition (see the module docstring), or None if it has none.

    ``root`` is the traced module (default: the graph's owning module), used to weigh two
    equally long operands by the leaf modules they run.

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
    root = root if root is not None else graph.owning_module
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
            tier = _skip_tier(skip, branch, source, depth, root)
            if tier:
                best[tier] = ResidualAdd(node, branch, skip)  # later additions overwrite earlier ones
                break
    return best.get(1) or best.get(2)


def passed_in_skip(graph: fx.Graph) -> Optional[str]:
    """The name of a forward argument other than the first that an addition adds (timm DLA's
    ``DlaBasic.forward(x, shortcut)``), else None: such a block gets its skip from its caller.

    Example:
        >>> class Block(torch.nn.Module):
        ...     def forward(self, x, shortcut):
        ...         return x * 2 + shortcut
        >>> passed_in_skip(fx.symbolic_trace(Block()).graph)
        'shortcut'
    """
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    for extra in placeholders[1:]:
        reached = _depths_from(graph, extra)
        if any(_is_add(n) and n in reached for n in graph.nodes):
            return str(extra.target).lstrip("*")
    return None
