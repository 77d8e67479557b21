"""``torch.jit.script`` of an injected model.

TorchScript compiles a module's hooks from their Python source and needs plain functions (it reads
``hook.__name__``), while plugattn's hooks are objects holding the attention. So an injected
model carries ``__prepare_scriptable__`` (an instance attribute: the host's class is unchanged),
which ``torch.jit.script`` calls first: it returns a copy in which every plugattn hook is a
generated function ``_plugattn_<position>_<name>(self, input, output)`` calling the attention as
``self.<name>``. TorchScript hooks can only reach children of the hooked module, so in that copy an
attention registered elsewhere (``branch``: on the block, hooked on ``bn3``) becomes a child of the
hooked module: the scripted model's state dict then names it ``layer1.0.bn3.eca`` instead of
``layer1.0.eca``. The injected model itself is never changed by scripting.
"""
from __future__ import annotations

import copy
import inspect
import itertools
import linecache
import typing
from typing import Callable

import torch
import torch.nn as nn

from .hooks import AttentionBeforeHook, AttentionHook, attention_hooks, detach_hooks
from .placement import CONTAINERS, unique_child_name

PREPARE = "__prepare_scriptable__"
_counter = itertools.count()


class PrepareScriptable:
    """The injected model's ``__prepare_scriptable__``: a picklable callable holding the model."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def __call__(self) -> nn.Module:
        return scriptable_copy(self.model)


def enable_scripting(model: nn.Module) -> None:
    """Give ``model`` its ``__prepare_scriptable__`` (see the module docstring)."""
    model.__dict__[PREPARE] = PrepareScriptable(model)


def disable_scripting(model: nn.Module) -> None:
    """Remove what :func:`enable_scripting` added."""
    if isinstance(model.__dict__.get(PREPARE), PrepareScriptable):
        del model.__dict__[PREPARE]


def _forward_arity(module: nn.Module, where: str) -> int:
    """Number of forward arguments; TorchScript hooks see them as a tuple of Tensors."""
    parameters = list(inspect.signature(type(module).forward).parameters.values())[1:]
    for p in parameters:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.annotation not in (p.empty, torch.Tensor, "torch.Tensor", "Tensor"):
            raise RuntimeError(
                f"torch.jit.script: the attention hook on {where!r} ({type(module).__name__}) needs a forward of "
                f"Tensor arguments, found {p}; use torch.jit.trace, torch.compile or torch.export instead"
            )
    return len(parameters)


def _compile_hook(name: str, source: str) -> Callable:
    """A function from generated ``source``, registered in linecache so TorchScript can read it."""
    filename = f"<plugattn-hook-{next(_counter)}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace = {"Tuple": typing.Tuple, "Tensor": torch.Tensor, "torch": torch}
    exec(compile(source, filename, "exec"), namespace)  # noqa: S102 - our own generated two-line hook
    return namespace[name]


def _hook_source(hook: AttentionHook, child: str, arity: int) -> typing.Tuple[str, str]:
    position = "before" if isinstance(hook, AttentionBeforeHook) else "after"
    name = f"_plugattn_{position}_{child}"
    inputs = "Tuple[" + ", ".join(["Tensor"] * arity) + "]"
    to_cf, from_cf = (".permute(0, 3, 1, 2)", ".permute(0, 2, 3, 1)") if hook.channels_last else ("", "")
    if position == "after":
        body = f"    return self.{child}(output{to_cf}){from_cf}\n"
        return name, f"def {name}(self, input: {inputs}, output: Tensor) -> Tensor:\n{body}"
    rest = "".join(f", input[{i}]" for i in range(1, arity))
    body = f"    return (self.{child}(input[0]{to_cf}){from_cf}{rest},)\n"
    return name, f"def {name}(self, input: {inputs}) -> {inputs}:\n{body}"


def scriptable_copy(model: nn.Module) -> nn.Module:
    """A copy of the injected ``model`` whose attention hooks TorchScript can compile."""
    clone = copy.deepcopy(model)
    disable_scripting(clone)
    clone.__dict__.pop("injection_report", None)
    names = {id(m): n for n, m in clone.named_modules()}
    for hooked in list(clone.modules()):
        found = list(attention_hooks(hooked))
        if not found:
            continue
        where = names[id(hooked)]
        detach_hooks(hooked)
        for _, _, hook in found:
            owner_path, _, child = hook.attention_name.rpartition(".")
            owner = clone.get_submodule(owner_path)
            if owner is not hooked:
                if isinstance(hooked, CONTAINERS):
                    raise RuntimeError(
                        f"torch.jit.script: the attention on {where!r} ({type(hooked).__name__}) lives on "
                        f"{owner_path or 'the root'} because the hooked module is a container, whose forward "
                        "would run a child of its own; TorchScript hooks can only call children of the hooked "
                        "module. Use torch.jit.trace, torch.compile or torch.export for this model"
                    )
                module = owner._modules.pop(child)
                child = unique_child_name(hooked, child)
                hooked.add_module(child, module)
            arity = _forward_arity(hooked, where)
            name, source = _hook_source(hook, child, arity)
            function = _compile_hook(name, source)
            if isinstance(hook, AttentionBeforeHook):
                hooked.register_forward_pre_hook(function, prepend=True)
            else:
                hooked.register_forward_hook(function, prepend=True)
    return clone
