"""Channel inference: run an example input through the host once, with temporary forward hooks.

The hooks record what each module of interest received and returned and how often it ran; a
module the input never reached has ``calls == 0``. The run happens on the injector's private copy,
in eval mode under ``no_grad`` (batch-norm statistics are not touched, batch 1 works). Nothing is
traced: any forward Python can run works (data-dependent control flow, ``*args, **kwargs``,
timm's HRNet modules, ...).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

DEFAULT_SIZE = 224


def default_input_size(model: nn.Module) -> Tuple[int, int, int]:
    """(C, H, W) the model takes: plugattn's ``default_input_size``, timm's ``pretrained_cfg`` /
    ``default_cfg`` ``input_size``, else the first ``Conv2d``'s ``in_channels`` x 224 x 224.

    Example:
        >>> default_input_size(nn.Conv2d(1, 4, 3))
        (1, 224, 224)
    """
    size = getattr(model, "default_input_size", None)
    if isinstance(size, int):
        return (3, size, size)
    if isinstance(size, (tuple, list)) and len(size) == 3:
        return tuple(int(v) for v in size)  # type: ignore[return-value]
    for cfg_name in ("pretrained_cfg", "default_cfg"):
        cfg = getattr(model, cfg_name, None)
        found = cfg.get("input_size") if isinstance(cfg, dict) else None
        if isinstance(found, (tuple, list)) and len(found) == 3:
            return tuple(int(v) for v in found)  # type: ignore[return-value]
    in_channels = next((m.in_channels for m in model.modules() if isinstance(m, nn.Conv2d)), 3)
    return (in_channels, DEFAULT_SIZE, DEFAULT_SIZE)


def default_example_input(model: nn.Module) -> torch.Tensor:
    """A (1, C, H, W) zero-mean random input of :func:`default_input_size`, on the device and in the
    dtype of the model's first floating-point parameter.

    Example:
        >>> default_example_input(nn.Conv2d(1, 4, 3)).shape
        torch.Size([1, 1, 224, 224])
    """
    param = next((p for p in model.parameters() if p.is_floating_point()), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None else torch.float32
    generator = torch.Generator().manual_seed(0)
    return torch.randn(1, *default_input_size(model), generator=generator).to(device=device, dtype=dtype)


@contextlib.contextmanager
def inference_run(model: nn.Module) -> Iterator[None]:
    """Eval mode and no_grad for the duration, restoring every module's training flag afterwards."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for module, mode in modes:
            module.training = mode


def as_example_args(example_input: Any) -> Tuple[Any, ...]:
    """The model's positional arguments: a tuple is unpacked; anything else, a list included (the
    ``[image]`` a detection model takes), is the one argument.

    Example:
        >>> len(as_example_args((1, 2))), len(as_example_args([1, 2]))
        (2, 1)
    """
    return tuple(example_input) if isinstance(example_input, tuple) else (example_input,)


def describe_value(value: Any) -> str:
    """A short description of what was found at a site (a shape, or the Python type)."""
    if isinstance(value, torch.Tensor):
        return f"shape {tuple(value.shape)}"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)} ({', '.join(describe_value(v) for v in value[:3])})"
    return f"a {type(value).__name__}"


def describe_input(args: Sequence[Any]) -> str:
    """``1×3×64×64`` for one tensor, else the described values."""
    if len(args) == 1 and isinstance(args[0], torch.Tensor):
        return "×".join(map(str, args[0].shape))
    return ", ".join(describe_value(a) for a in args)


@dataclass
class SiteValues:
    """What one module received and returned during the example run.

    ``last_leaf`` is the last parameterised leaf module that ran inside it (for the layout check).
    """

    args: Tuple[Any, ...] = ()
    kwargs: Dict[str, Any] = field(default_factory=dict)
    output: Any = None
    calls: int = 0
    last_leaf: Optional[nn.Module] = None


def _is_parameterised_leaf(module: nn.Module) -> bool:
    return not module._modules and bool(module._parameters)


def record_calls(model: nn.Module, example_args: Tuple[Any, ...], names: Sequence[str]) -> Dict[str, SiteValues]:
    """Run ``model`` once on ``example_args`` with temporary hooks on the modules at ``names``; return
    what each saw (the first call's values, and the number of calls). Every hook is removed after.

    Example:
        >>> model = nn.Sequential(nn.Conv2d(3, 8, 1), nn.ReLU())
        >>> seen = record_calls(model, (torch.zeros(1, 3, 4, 4),), ["0"])
        >>> seen["0"].calls, tuple(seen["0"].output.shape), type(seen["0"].last_leaf).__name__
        (1, (1, 8, 4, 4), 'Conv2d')
    """
    values = {name: SiteValues() for name in names}
    last_leaf: List[Optional[nn.Module]] = [None]
    handles = []

    def before(name: str):
        def hook(module: nn.Module, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> None:
            if values[name].calls == 0:
                values[name].args, values[name].kwargs = tuple(args), dict(kwargs)
        return hook

    def after(name: str):
        def hook(module: nn.Module, args: Tuple[Any, ...], kwargs: Dict[str, Any], output: Any) -> None:
            record = values[name]
            if record.calls == 0:
                record.output = output
                record.last_leaf = module if _is_parameterised_leaf(module) else last_leaf[0]
            record.calls += 1
        return hook

    def leaf_ran(module: nn.Module, args: Tuple[Any, ...], output: Any) -> None:
        last_leaf[0] = module

    try:
        for name in names:
            module = model.get_submodule(name)
            handles.append(module.register_forward_pre_hook(before(name), with_kwargs=True, prepend=True))
            handles.append(module.register_forward_hook(after(name), with_kwargs=True, prepend=True))
        for module in model.modules():
            if _is_parameterised_leaf(module):
                handles.append(module.register_forward_hook(leaf_ran))
        with inference_run(model):
            model(*example_args)
    finally:
        for handle in handles:
            handle.remove()
    return values


def recorded_value(values: SiteValues, position: str, argument: Optional[str]) -> Any:
    """The tensor a site's attention sees: the module's first input for "before" (positional, or
    the keyword ``argument``), else its output."""
    if position == "before":
        if values.args:
            return values.args[0]
        return values.kwargs.get(argument) if argument else None
    return values.output
