"""inject_attention: plug attention modules into any backbone by rewriting its FX graph.

Pipeline: copy the model -> select sites -> trace with the sites as leaves (or fall back to hooks)
-> run an example input for the channel count at every site -> build one attention per site ->
splice it into the graph (``after`` / ``before``) or into the block's own graph (``branch``) ->
return the new model carrying an :class:`InjectionReport`.
"""
from __future__ import annotations

import copy
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.fx as fx
import torch.nn as nn

from .._validate import check_choice
from ..attention.registry import ATTENTION, AttentionSpec, create_attention
from .graph_module import graph_module_like, set_class_name
from .hooks import attach_hook
from .identity import INITS, identity_factory, record_init, settle_gate
from .placement import attention_base_name, choose_owner, qualified, unique_child_name
from .report import REPORT_ATTRIBUTE, InjectionReport, InjectionSite
from .rewrite import insert_after, insert_before, insert_on_branch, site_nodes, trace_block
from .selectors import SelectorSpec, find_matches, no_match_error, resolve_selector
from .shapes import (
    SiteValues,
    as_example_args,
    default_example_input,
    feature_map_channels,
    inference_run,
    placeholder_args,
    propagate_graph,
    record_with_hooks,
    recorded_value,
    value_at_node,
)
from .shells import empty_shell
from .tracing import UntraceableError, trace_to_sites

POSITIONS = ("after", "before", "branch")
MODES = ("auto", "fx", "hook")

try:  # GraphModule.__deepcopy__ re-sets attributes listed here (torch >= 2.1)
    from torch.fx.graph_module import _USER_PRESERVED_ATTRIBUTES_KEY
except ImportError:  # pragma: no cover - older torch
    _USER_PRESERVED_ATTRIBUTES_KEY = None


def inject_attention(
    model: nn.Module,
    attention: AttentionSpec,
    selector: Optional[SelectorSpec] = None,
    *,
    where: str = "after",
    after: Optional[SelectorSpec] = None,
    before: Optional[SelectorSpec] = None,
    branch: Optional[SelectorSpec] = None,
    mode: str = "auto",
    example_input: Any = None,
    init: str = "default",
    **attention_kwargs: Any,
) -> nn.Module:
    """A copy of ``model`` with ``attention`` inserted at every module the selector matches.

    Args:
        model: any ``nn.Module``; never modified.
        attention: registry name (``"eca"``), an ``nn.Module`` class, or a factory ``(channels) -> nn.Module``.
        selector: which modules (see :mod:`plugattn.inject.selectors`), with ``where`` the position:
            ``"after"`` the module's output, ``"before"`` its input, ``"branch"`` on a residual block's
            branch just before the skip addition. ``after=sel`` / ``before=sel`` / ``branch=sel`` are
            shorthands for ``selector=sel, where=...``.
        mode: ``"fx"`` (trace the forward code down to the sites; every module without a site inside
            stays one opaque call), ``"hook"`` (forward hooks, no tracing of the model) or ``"auto"``
            (fx, else hook; the report says which and why).
        example_input: a tensor (or tuple of positional inputs) for channel inference; default
            (1, 3, 224, 224), or the timm ``pretrained_cfg`` input size.
        init: ``"default"`` (each module's own initialisation) or ``"identity"``: the model computes
            exactly what ``model`` computes until the attention learns (a zero-initialised per-channel
            gate, see :mod:`plugattn.inject.identity`).
        **attention_kwargs: passed to the attention constructor (``reduction=8``).

    Returns:
        A new model (a ``GraphModule`` in fx mode) whose ``injection_report`` lists the sites.

    Example:
        >>> import torchvision
        >>> model = inject_attention(torchvision.models.resnet18(), "eca", after="basicblock",
        ...                          example_input=torch.randn(1, 3, 64, 64))
        >>> len(model.injection_report.sites), model.injection_report.sites[0].attention
        (8, 'layer1.0.eca')
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be an nn.Module, got {type(model).__name__}")
    spec, position = _selector_and_position(selector, where, after, before, branch)
    check_choice("mode", mode, MODES)
    check_choice("init", init, INITS)
    _check_attention_spec(attention)
    chosen = resolve_selector(spec)

    previous = getattr(model, REPORT_ATTRIBUTE, None)
    previous = previous if isinstance(previous, InjectionReport) else None
    earlier_attention = [s.attention for s in previous.sites] if previous else []

    work = copy.deepcopy(model)
    if previous:
        _restore_class_names(work, previous)
    matches = find_matches(work, chosen, excluded=earlier_attention)
    if not matches:
        raise no_match_error(work, chosen, excluded=earlier_attention)
    names = [name for name, _ in matches]
    if position == "branch" and previous:
        again = [s.site for s in previous.sites if s.position == "branch" and s.site in names]
        if again:
            raise ValueError(f"'branch' position: block(s) {', '.join(again)} already carry branch attention")

    root_shell = previous.original_root if previous and previous.original_root is not None else None
    if root_shell is None and not isinstance(work, fx.GraphModule):
        root_shell = empty_shell(work)
    example_args = as_example_args(example_input if example_input is not None else default_example_input(work))

    result, values, used_mode, fallback_reason = _trace_or_hook(work, names, example_args, mode)

    sites: List[InjectionSite] = []
    skipped: List[str] = []
    base = attention_base_name(attention)
    build = identity_factory(attention) if init == "identity" else attention
    for name, module in matches:
        record = values.get(name)
        if record is None or record.calls == 0:
            skipped.append(name)
            continue
        if record.calls > 1:
            raise ValueError(
                f"site {name!r} ({type(module).__name__}) is called {record.calls} times in one forward; "
                "inject_attention needs one call per matched module -- select its parent block instead"
            )
        if position == "branch":
            sites.append(_inject_branch(result, name, module, record, build, base, attention_kwargs))
        else:
            sites.append(
                _inject_at(result, name, module, record, position, build, base, attention_kwargs, used_mode)
            )
    if not sites:
        raise ValueError(
            f"selector {chosen.describe()} matched {', '.join(skipped)}, but none is called in forward"
        )
    sites = [record_init(site, result, init) for site in sites]
    if isinstance(result, fx.GraphModule) and used_mode == "fx":
        result.graph.lint()
        result.recompile()

    report = InjectionReport(
        sites=(previous.sites if previous else []) + sites,
        mode=used_mode,
        selector=chosen.describe(),
        fallback_reason=fallback_reason,
        original_root=root_shell,
    )
    _attach_report(result, report)
    return result


def _restore_class_names(model: nn.Module, report: InjectionReport) -> None:
    """GraphModules made by an earlier injection lose their class name in pickle; put it back so
    class-name selectors and messages see "Bottleneck", not "GraphModule"."""
    if report.original_root is not None:
        set_class_name(model, type(report.original_root).__name__)
    for site in report.sites:
        if site.position == "branch":
            set_class_name(model.get_submodule(site.site), site.site_class)


def _selector_and_position(selector, where, after, before, branch) -> Tuple[SelectorSpec, str]:
    given = {k: v for k, v in (("selector", selector), ("after", after), ("before", before), ("branch", branch)) if v is not None}
    if len(given) != 1:
        raise ValueError(
            "give exactly one selector: selector=... with where=..., or one of after=/before=/branch=; "
            f"got {', '.join(given) or 'none'}"
        )
    (keyword, spec), = given.items()
    check_choice("where", where, POSITIONS)
    if keyword != "selector":
        if where not in ("after", keyword):
            raise ValueError(f"where={where!r} contradicts {keyword}=...; use one of them")
        where = keyword
    return spec, where


def _check_attention_spec(attention: object) -> None:
    if isinstance(attention, str):
        ATTENTION.get(attention)  # ValueError naming the unknown name, with close matches
    elif not callable(attention):
        raise ValueError(
            "attention must be a registry name, an nn.Module class or a factory (channels) -> nn.Module, "
            f"got {type(attention).__name__} {attention!r}"
        )


def _trace_or_hook(
    work: nn.Module, names: List[str], example_args: Tuple[Any, ...], mode: str
) -> Tuple[nn.Module, Dict[str, SiteValues], str, Optional[str]]:
    """The module to edit (GraphModule or the copy itself), site values, mode used and why it fell back."""
    fallback_reason = None
    if mode in ("auto", "fx"):
        try:
            graph = trace_to_sites(work, names)
        except UntraceableError as err:
            if mode == "fx":
                raise UntraceableError(f"{err}; mode='hook' (or 'auto') applies attention by forward hooks instead") from err
            fallback_reason = str(err)
        else:
            gm = graph_module_like(work, graph)
            try:
                values = propagate_graph(gm, example_args, names)
            except Exception as err:
                raise ValueError(f"running example_input through the traced model failed: {err}") from err
            for name in names:  # ShapeProp counts interpreter calls; the graph tells the calls per forward
                values[name].calls = len(site_nodes(gm.graph, name))
            return gm, values, "fx", None
    try:
        values = record_with_hooks(work, example_args, names)
    except Exception as err:
        raise ValueError(f"running example_input through the model failed: {err}") from err
    return work, values, "hook", fallback_reason


def _build_attention(
    attention: AttentionSpec, channels: int, feature_map: Any, kwargs: Dict[str, Any], like: nn.Module, where: str
) -> nn.Module:
    module = create_attention(attention, channels, **kwargs)
    if isinstance(feature_map, torch.Tensor):
        module = module.to(device=feature_map.device, dtype=feature_map.dtype)
        with inference_run(module):
            out = module(feature_map)
        if not isinstance(out, torch.Tensor) or out.shape != feature_map.shape:
            found = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(
                f"site {where}: attention {type(module).__name__} maps {tuple(feature_map.shape)} to {found}; "
                "it must keep the (B, C, H, W) shape"
            )
        module = settle_gate(module, feature_map)  # init="identity": no gate on a module that already is the identity
    module.train(like.training)
    return module


def _inject_at(
    result: nn.Module,
    name: str,
    module: nn.Module,
    record: SiteValues,
    position: str,
    attention: AttentionSpec,
    base: str,
    kwargs: Dict[str, Any],
    used_mode: str,
) -> InjectionSite:
    where = f"{name!r} ({type(module).__name__}, {position})"
    feature_map = recorded_value(record, position)
    channels, shape = feature_map_channels(feature_map, where)
    attn = _build_attention(attention, channels, feature_map, kwargs, module, where)
    owner_path, child = choose_owner(result, name, base)
    result.get_submodule(owner_path).add_module(child, attn)
    target = qualified(owner_path, child)
    if used_mode == "fx":
        (node,) = site_nodes(result.graph, name)
        (insert_after if position == "after" else insert_before)(result.graph, node, target)
    else:
        attach_hook(module, attn, position)
    return InjectionSite(
        name, type(module).__name__, position, channels, target, type(attn).__name__, _count(attn), shape
    )


def _inject_branch(
    result: nn.Module,
    name: str,
    block: nn.Module,
    record: SiteValues,
    attention: AttentionSpec,
    base: str,
    kwargs: Dict[str, Any],
) -> InjectionSite:
    where = f"{name!r} ({type(block).__name__}, branch)"
    block_gm, residual = trace_block(block, name)
    feature_map = value_at_node(block_gm, residual.branch, placeholder_args(block_gm, record.args, record.kwargs))
    channels, shape = feature_map_channels(feature_map, where)
    attn = _build_attention(attention, channels, feature_map, kwargs, block, where)
    child = unique_child_name(block_gm, base)
    block_gm.add_module(child, attn)
    insert_on_branch(block_gm, residual, child)
    block_gm.graph.lint()
    block_gm.recompile()
    parent_path, _, last = name.rpartition(".")
    setattr(result.get_submodule(parent_path), last, block_gm)
    return InjectionSite(
        name,
        type(block).__name__,
        "branch",
        channels,
        qualified(name, child),
        type(attn).__name__,
        _count(attn),
        shape,
        original_block=empty_shell(block),
    )


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _attach_report(model: nn.Module, report: InjectionReport) -> None:
    setattr(model, REPORT_ATTRIBUTE, report)
    if isinstance(model, fx.GraphModule) and _USER_PRESERVED_ATTRIBUTES_KEY is not None:
        model.meta.setdefault(_USER_PRESERVED_ATTRIBUTES_KEY, {})[REPORT_ATTRIBUTE] = report
