"""``branch`` sites: which module inside a residual block produces the branch the skip is added to.

Only the block's own forward is traced (every child an opaque call), and only to read it: the graph
is analysed by :func:`find_residual_add` and thrown away; it never runs. The branch operand of the
skip addition must be the output of one module call inside the block (``bn3`` of a ResNet
bottleneck, ``drop_path`` of a timm block, ``f`` of a RegNet block), used nowhere else: the
attention is then a forward hook on that module, and the block's own forward runs it.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch.nn as nn

from .residual import find_residual_add, passed_in_skip
from .tracing import UntraceableError, trace_block


class NoResidualError(ValueError):
    """A block matched for ``branch`` that has no residual addition of its own input."""


@dataclass(frozen=True)
class BranchPlan:
    """Where a block's branch ends: ``end`` is the module's path relative to the block (``"bn3"``)."""

    block: str
    end: str

    @property
    def end_name(self) -> str:
        """Qualified name of the branch's last module in the whole model."""
        return f"{self.block}.{self.end}" if self.block else self.end


def plan_branch(block: nn.Module, name: str) -> BranchPlan:
    """The :class:`BranchPlan` of ``block`` (at qualified ``name``); ``NoResidualError`` when it has
    no residual addition, ``ValueError`` naming the block, the reason and an alternative when the
    branch cannot be attached to.

    Example:
        >>> import torch
        >>> class Block(nn.Module):
        ...     def __init__(self):
        ...         super().__init__(); self.conv = nn.Conv2d(4, 4, 3, padding=1)
        ...     def forward(self, x):
        ...         return torch.relu(self.conv(x) + x)
        >>> plan_branch(Block(), "layer1.0")
        BranchPlan(block='layer1.0', end='conv')
    """
    label = f"'branch' position: block {name!r} ({type(block).__name__})"
    try:
        graph = trace_block(block)
    except UntraceableError as err:
        raise ValueError(f"{label} cannot be traced to find its residual addition: {err}; "
                         "use where='after' or 'before', which need no tracing") from err
    residual = find_residual_add(graph, block)
    if residual is None:
        passed = passed_in_skip(graph)
        why = (f"its skip {passed!r} is passed in by the caller, so the block's forward adds no function of its own input"
               if passed else "no addition of its input, or its downsampled input, to a branch")
        raise NoResidualError(f"{label} has no residual addition ({why}); use where='after' or 'before'")
    end = residual.branch
    if end.op != "call_module":
        raise ValueError(
            f"{label}: its residual branch ends in {end.op} {getattr(end.target, '__name__', end.target)!r}, "
            "not in a module call, so there is no module boundary to attach attention to; "
            "use where='after' on the block, or after= on the module that computes the branch"
        )
    others = [u.name for u in end.users if u is not residual.node]
    if others:
        raise ValueError(
            f"{label}: the branch output of {end.target!r} is also used by {', '.join(others)}, "
            "not only by the skip addition; use where='after' on the block instead"
        )
    return BranchPlan(name, str(end.target))
