"""The identity-equivalence contract: an injected model with identity attention is indistinguishable
from its host (class, public attributes and methods, outputs and their types in train and eval,
hooks, gradient checkpointing). Used by test_catalogue.py and test_contract.py."""
from __future__ import annotations

import contextlib
import inspect
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.utils.checkpoint

from plugattn.inject import inject_attention


def identity(channels: int) -> nn.Module:
    """The attention that changes nothing (a factory, so the report names it ``identity``)."""
    return nn.Identity()


def assert_same_tree(a: Any, b: Any, where: str = "output") -> None:
    """Same Python types all the way down (namedtuples, dicts, lists), tensors bitwise equal."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, torch.Tensor):
        assert a.shape == b.shape and a.dtype == b.dtype, where
        assert torch.equal(a, b), f"{where}: tensors differ"
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for key in a:
            assert_same_tree(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_tree(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def tensors_of(value: Any) -> List[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        return [t for v in value.values() for t in tensors_of(v)]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in tensors_of(v)]
    return []


class HookLog:
    """Forward hooks and pre-hooks on every host module of two models, logging per model
    ``(qualified name, kind, tensors)`` in call order."""

    def __init__(self) -> None:
        self.names: Dict[int, Tuple[str, str]] = {}
        self.calls: Dict[str, List[Tuple[str, str, List[torch.Tensor]]]] = {"host": [], "injected": []}

    def map(self, which: str, model: nn.Module, host_names: Sequence[str]) -> None:
        for name in host_names:
            self.names[id(model.get_submodule(name))] = (which, name)

    def record(self, module: nn.Module, kind: str, value: Any) -> None:
        if id(module) in self.names:  # not during injection's own example run
            which, name = self.names[id(module)]
            self.calls[which].append((name, kind, [t.detach().clone() for t in tensors_of(value)]))

    def register(self, model: nn.Module, names: Sequence[str]) -> None:
        # plain closures: deepcopy (inside inject_attention) keeps functions, so the copies log here too
        def pre_hook(module, args):
            self.record(module, "pre", args)

        def hook(module, args, output):
            self.record(module, "post", output)

        for name in names:
            module = model.get_submodule(name)
            module.register_forward_pre_hook(pre_hook)
            module.register_forward_hook(hook)

    def clear(self) -> None:
        for log in self.calls.values():
            log.clear()

    def assert_same(self) -> None:
        host, injected = self.calls["host"], self.calls["injected"]
        assert len(host) > 0
        assert [c[:2] for c in host] == [c[:2] for c in injected], "hooks fired differently"
        for (name, kind, a), (_, _, b) in zip(host, injected):
            assert len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b)), f"hook on {name} ({kind})"


@contextlib.contextmanager
def counting_checkpoints():
    """Count calls of ``torch.utils.checkpoint.checkpoint`` (timm and torchvision look it up at call time)."""
    original = torch.utils.checkpoint.checkpoint
    counter = [0]

    def counted(*args, **kwargs):
        counter[0] += 1
        return original(*args, **kwargs)

    torch.utils.checkpoint.checkpoint = counted
    try:
        yield counter
    finally:
        torch.utils.checkpoint.checkpoint = original


def assert_same_public_surface(host: nn.Module, injected: nn.Module) -> None:
    """isinstance, and every public attribute and method of the host, with equal plain values."""
    assert isinstance(injected, type(host)) and type(injected) is type(host)
    for name in dir(host):
        if name.startswith("_"):
            continue
        assert hasattr(injected, name), name
        a, b = getattr(host, name), getattr(injected, name)
        if inspect.ismethod(a):
            assert b.__func__ is a.__func__, name
        elif isinstance(a, (bool, int, float, str, type(None), tuple, list, dict)) and not tensors_of(a):
            assert a == b, name


def run(model: nn.Module, inputs: Tuple[Any, ...], kwargs: Dict[str, Any], seed: int, train: bool,
        loss: Callable[[Any], torch.Tensor]) -> Tuple[Any, int, Dict[str, torch.Tensor]]:
    """One forward (and in train mode a backward) with a fixed RNG seed: output, checkpoint calls, grads."""
    model.train(train)
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    with counting_checkpoints() as checkpoints:
        output = model(*inputs, **kwargs)
        if train:
            loss(output).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return output, checkpoints[0], grads


def default_loss(output: Any) -> torch.Tensor:
    return sum(t.float().square().mean() for t in tensors_of(output) if t.is_floating_point())


def check_contract(
    build: Callable[[], nn.Module],
    inputs: Tuple[Any, ...],
    *,
    kwargs: Optional[Dict[str, Any]] = None,
    attention: Any = identity,
    example_input: Any = None,
    loss: Callable[[Any], torch.Tensor] = default_loss,
    methods: Callable[[nn.Module], Any] = lambda model: None,
    expect_checkpoints: bool = False,
    **selection: Any,
) -> nn.Module:
    """Build the host twice (same seed), inject ``attention`` into one, and check the contract.

    With the identity attention every output, hook tensor and gradient is bitwise equal; with a
    real attention, the types, hook calls and checkpoint counts still are. ``methods(model)`` calls
    host methods; their results are compared too.
    """
    kwargs = kwargs or {}
    torch.manual_seed(0)
    host = build()
    host_names = [n for n, _ in host.named_modules()]
    log = HookLog()
    log.register(host, host_names)  # registered before injection: the injected copy inherits them
    injected = inject_attention(host, attention, example_input=example_input if example_input is not None else inputs[0],
                                **selection)
    report = injected.injection_report
    assert report.sites, "no site was injected"
    log.map("host", host, host_names)
    log.map("injected", injected, host_names)
    log.register(host, host_names)  # and hooks registered after injection, on both
    log.register(injected, host_names)
    assert_same_public_surface(host, injected)
    exact = attention is identity
    for train in (True, False):
        log.clear()
        out_h, ckpt_h, grads_h = run(host, inputs, kwargs, 1234, train, loss)
        out_i, ckpt_i, grads_i = run(injected, inputs, kwargs, 1234, train, loss)
        assert ckpt_h == ckpt_i, f"checkpoint calls: host {ckpt_h}, injected {ckpt_i}"
        if train and expect_checkpoints:
            assert ckpt_h > 0
        if exact:
            assert_same_tree(out_h, out_i)
            log.assert_same()
            assert set(grads_h) <= set(grads_i)
            for name, grad in grads_h.items():
                assert torch.equal(grad, grads_i[name]), name
        else:
            assert_same_tree(_types(out_h), _types(out_i))
            assert [c[:2] for c in log.calls["host"]] == [c[:2] for c in log.calls["injected"]]
    host.eval(), injected.eval()
    with torch.no_grad():
        torch.manual_seed(99)  # methods may draw weights (reset_classifier)
        result_h = methods(host)
        torch.manual_seed(99)
        result_i = methods(injected)
    if exact:
        assert_same_tree(result_h, result_i, "methods")
    return injected


def _types(value: Any) -> Any:
    """The value's structure with tensors replaced by their shapes (for real attention)."""
    if isinstance(value, torch.Tensor):
        return tuple(value.shape)
    if isinstance(value, dict):
        return type(value)((k, _types(v)) for k, v in value.items())
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*(_types(v) for v in value))
    if isinstance(value, (list, tuple)):
        return type(value)(_types(v) for v in value)
    return value
