"""Channel inference: run an example input through the model and read the feature map at each site.

On the FX path this is ``torch.fx.passes.shape_prop.ShapeProp`` over the traced graph; on the hook
path (untraceable models) forward hooks on the matched modules record the same tensors. Either way
the run happens in eval mode under ``no_grad`` (batch norm statistics are not touched, batch 1 works).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
import torch.fx as fx
import torch.nn as nn
from torch.fx.passes.shape_prop import ShapeProp

DEFAULT_SIZE = 224


def default_example_input(model: nn.Module) -> torch.Tensor:
    """A (1, C, H, W) zero-mean random input derived from the model.

    C is the first ``Conv2d``'s ``in_channels`` (3 if none); H, W come from timm's
    ``pretrained_cfg["input_size"]`` / ``default_cfg`` when present, else 224. Device and dtype follow
    the first floating-point parameter.

    Example:
        >>> default_example_input(nn.Conv2d(1, 4, 3)).shape
        torch.Size([1, 1, 224, 224])
    """
    in_channels = next((m.in_channels for m in model.modules() if isinstance(m, nn.Conv2d)), 3)
    height = width = DEFAULT_SIZE
    for cfg_name in ("pretrained_cfg", "default_cfg"):
        cfg = getattr(model, cfg_name, None)
        size = cfg.get("input_size") if isinstance(cfg, dict) else None
        if isinstance(size, (tuple, list)) and len(size) == 3:
            in_channels, height, width = (int(v) for v in size)
            break
    param = next((p for p in model.parameters() if p.is_floating_point()), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None else torch.float32
    generator = torch.Generator().manual_seed(0)
    return torch.randn(1, in_channels, height, width, generator=generator).to(device=device, dtype=dtype)


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
    """The model's positional arguments: a tuple/list is unpacked, anything else is one argument."""
    return tuple(example_input) if isinstance(example_input, (tuple, list)) else (example_input,)


def describe_value(value: Any) -> str:
    """A short description of what was found at a site (a shape, or the Python type)."""
    if isinstance(value, torch.Tensor):
        return f"shape {tuple(value.shape)}"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)} ({', '.join(describe_value(v) for v in value[:3])})"
    return f"a {type(value).__name__}"


def feature_map_channels(value: Any, where: str) -> Tuple[int, tuple]:
    """C and the shape of ``value`` if it is a (B, C, H, W) tensor; ``ValueError`` naming ``where`` otherwise.

    Example:
        >>> feature_map_channels(torch.zeros(2, 8, 4, 4), "layer1.0 (after)")
        (8, (2, 8, 4, 4))
    """
    if not isinstance(value, torch.Tensor) or value.dim() != 4:
        raise ValueError(
            f"site {where}: attention needs a (B, C, H, W) feature map, found {describe_value(value)}"
        )
    return int(value.shape[1]), tuple(value.shape)


@dataclass
class SiteValues:
    """What one matched module received and returned during the example run."""

    args: Tuple[Any, ...] = ()
    kwargs: Dict[str, Any] = field(default_factory=dict)
    output: Any = None
    calls: int = 0


class _RecordingShapeProp(ShapeProp):
    """ShapeProp that also keeps the inputs and output of the ``call_module`` nodes of interest."""

    def __init__(self, gm: fx.GraphModule, targets: Sequence[str]) -> None:
        super().__init__(gm)
        self.values: Dict[str, SiteValues] = {t: SiteValues() for t in targets}

    def call_module(self, target, args, kwargs):  # type: ignore[override]
        output = super().call_module(target, args, kwargs)
        if target in self.values:
            record = self.values[target]
            record.args, record.kwargs, record.output = tuple(args), dict(kwargs), output
            record.calls += 1
        return output


def propagate_graph(gm: fx.GraphModule, example_args: Tuple[Any, ...], targets: Sequence[str]) -> Dict[str, SiteValues]:
    """Run ShapeProp over ``gm`` (filling ``node.meta["tensor_meta"]``); return the values seen by
    the ``call_module`` nodes whose target is in ``targets``."""
    prop = _RecordingShapeProp(gm, targets)
    with inference_run(gm):
        prop.propagate(*example_args)
    return prop.values


def record_with_hooks(model: nn.Module, example_args: Tuple[Any, ...], names: List[str]) -> Dict[str, SiteValues]:
    """Run ``model`` once with forward hooks on the modules at ``names``; return what they saw."""
    values = {name: SiteValues() for name in names}
    handles = []

    def make_hook(name: str):
        def hook(module: nn.Module, args: Tuple[Any, ...], kwargs: Dict[str, Any], output: Any) -> None:
            record = values[name]
            record.args, record.kwargs, record.output = tuple(args), dict(kwargs), output
            record.calls += 1

        return hook

    try:
        for name in names:
            handles.append(model.get_submodule(name).register_forward_hook(make_hook(name), with_kwargs=True))
        with inference_run(model):
            model(*example_args)
    finally:
        for handle in handles:
            handle.remove()
    return values


def placeholder_args(gm: fx.GraphModule, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> List[Any]:
    """Positional values for every placeholder of ``gm`` from a recorded call (kwargs by name,
    then the placeholder's default)."""
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    values: List[Any] = list(args[: len(placeholders)])
    for node in placeholders[len(values):]:
        name = str(node.target).lstrip("*")
        if name in kwargs:
            values.append(kwargs[name])
        elif node.args:
            values.append(node.args[0])  # the default value recorded by the tracer
        else:
            raise ValueError(f"no value for argument {name!r} of the traced block")
    return values


def recorded_value(values: Optional[SiteValues], position: str) -> Any:
    """The tensor a site's attention sees: the module's first input for "before", else its output."""
    if values is None:
        return None
    if position == "before":
        return values.args[0] if values.args else next(iter(values.kwargs.values()), None)
    return values.output


class _NodeValueProp(ShapeProp):
    """ShapeProp that keeps the value computed at one node."""

    def __init__(self, gm: fx.GraphModule, node: fx.Node) -> None:
        super().__init__(gm)
        self.node = node
        self.value: Any = None

    def run_node(self, n: fx.Node) -> Any:
        result = super().run_node(n)
        if n is self.node:
            self.value = result
        return result


def value_at_node(gm: fx.GraphModule, node: fx.Node, args: Sequence[Any]) -> Any:
    """Run ShapeProp over ``gm`` on ``args``; return the value ``node`` computed."""
    prop = _NodeValueProp(gm, node)
    with inference_run(gm):
        prop.propagate(*args)
    return prop.value
