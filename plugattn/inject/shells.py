"""Empty shells of modules: how remove_attention rebuilds a rewritten module as its original class.

A shell is a copy of a module's object (its class, its plain attributes, its hooks) whose child
modules, parameters and buffers are recorded by name only (values ``None``). Rebuilding fills the
names back in from the module that replaced it, so the result has the original class, the original
order of children and tensors, and the live (possibly trained) values -- without keeping a second
copy of the weights around.
"""
from __future__ import annotations

import copy
from collections import OrderedDict

import torch.nn as nn

_TENSOR_AND_CHILD_DICTS = ("_modules", "_parameters", "_buffers")


def empty_shell(module: nn.Module) -> nn.Module:
    """A detached copy of ``module`` with children, parameters and buffers reduced to their names.

    Example:
        >>> shell = empty_shell(nn.Sequential(nn.ReLU()))
        >>> type(shell).__name__, dict(shell._modules)
        ('Sequential', {'0': None})
    """
    shell = type(module).__new__(type(module))
    state = {k: v for k, v in module.__dict__.items() if k not in _TENSOR_AND_CHILD_DICTS}
    for key in _TENSOR_AND_CHILD_DICTS:
        state[key] = OrderedDict((name, None) for name in module.__dict__[key])
    shell.__dict__.update(copy.deepcopy(state))
    return shell


def rebuild_from_shell(shell: nn.Module, donor: nn.Module) -> nn.Module:
    """A new module of the shell's class holding ``donor``'s children and tensors of the recorded
    names (names the shell does not record, e.g. added attention, are left out).

    Example:
        >>> original = nn.Sequential(nn.ReLU())
        >>> rebuilt = rebuild_from_shell(empty_shell(original), original)
        >>> type(rebuilt).__name__, rebuilt[0] is original[0]
        ('Sequential', True)
    """
    rebuilt = copy.deepcopy(shell)
    for key in _TENSOR_AND_CHILD_DICTS:
        recorded = rebuilt.__dict__[key]
        available = donor.__dict__[key]
        for name in recorded:
            recorded[name] = available.get(name)
    return rebuilt
