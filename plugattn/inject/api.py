"""inject_attention: plug attention modules into any backbone at module boundaries.

Pipeline: copy the model -> select sites -> for ``branch``, trace each matched block's own forward
to find the module that ends its residual branch -> run the example input once with temporary
hooks (channels, layout, which modules ran) -> build one attention per site -> register it as a
child and attach it by a forward hook / pre-hook -> return the copy carrying an
:class:`InjectionReport`. The copy is the host's own class with its own forward code; see
:mod:`plugattn.inject.hooks` for why that keeps everything else about the host.
"""
from __future__ import annotations

import copy
import inspect
import warnings
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn as nn

from .._validate import check_choice
from ..attention.registry import ATTENTION, AttentionSpec, create_attention
from ..parameters import count_parameters
from .branch import BranchPlan, NoResidualError, plan_branch
from .hooks import AttentionAfterHook, AttentionBeforeHook, attach_hook, to_channels_first
from .layout import is_channels_last
from .placement import attention_base_name, choose_owner, qualified
from .position import resolve_position
from .identity import INITS, identity_factory, record_init, settle_gate
from .report import REPORT_ATTRIBUTE, InjectionReport, InjectionSite
from .scripting import enable_scripting
from .selectors import SelectorSpec, find_matches, no_match_error, resolve_selector
from .shapes import (
    SiteValues,
    as_example_args,
    default_example_input,
    default_input_size,
    describe_input,
    describe_value,
    inference_run,
    record_calls,
    recorded_value,
)

MODES = ("auto", "fx", "hook")
UNREACHED = ("error", "warn")
NO_RESIDUAL = ("skip", "error")

FX_MODE_REMOVED = (
    "mode='fx' no longer rewrites the whole model into a torch.fx GraphModule (that froze self.training, "
    "dropped hooks and gradient checkpointing of traced modules); every attention is now attached at a "
    "module boundary, as with mode='auto'. Drop the mode argument."
)


def inject_attention(
    model: nn.Module,
    attention: AttentionSpec,
    selector: Optional[SelectorSpec] = None,
    *,
    where: Optional[str] = None,
    after: Optional[SelectorSpec] = None,
    before: Optional[SelectorSpec] = None,
    branch: Optional[SelectorSpec] = None,
    mode: str = "auto",
    example_input: Any = None,
    unreached: str = "error",
    no_residual: str = "skip",
    init: str = "default",
    **attention_kwargs: Any,
) -> nn.Module:
    """A copy of ``model`` with ``attention`` inserted at every module the selector matches.

    The copy is an instance of the host's own class and runs the host's own forward code: only
    plugattn forward hooks (and the attention modules, as new children) are added.

    Args:
        model: any ``nn.Module``; never modified.
        attention: registry name (``"eca"``), an ``nn.Module`` class, or a factory ``(channels) -> nn.Module``.
        selector: which modules (see :mod:`plugattn.inject.selectors`), with ``where`` the position:
            ``"after"`` (default) the module's output, ``"before"`` its first input, ``"branch"`` on a residual
            block's branch just before the skip addition. ``after=sel`` / ``before=sel`` /
            ``branch=sel`` are shorthands for ``selector=sel, where=...`` (a ``where`` given with one
            of them must name the same position).
        mode: ``"auto"`` or ``"hook"`` (the same: attach by hooks at module boundaries). ``"fx"`` is
            accepted with a ``FutureWarning`` and does the same (the whole-model rewrite is gone).
        example_input: one forward's input for channel inference: a tensor, a tuple of positional
            inputs, or any other single argument (a list such as Faster R-CNN's ``[image]``).
            Default: a (1, C, H, W) tensor of the model's own input size (plugattn's
            ``default_input_size``, timm's ``pretrained_cfg``), else 3x224x224.
        unreached: ``"error"`` (default) when a matched module never runs on the example input;
            ``"warn"`` warns, skips it and lists it in ``report.skipped``.
        no_residual: for ``branch``: ``"skip"`` (default) injects into the matched blocks that have
            a residual addition and lists the others in ``report.skipped``; ``"error"`` refuses.
        init: ``"default"`` (each module's own initialisation) or ``"identity"``: the model computes
            exactly what ``model`` computes until the attention learns (a zero-initialised per-channel
            gate, see :mod:`plugattn.inject.identity`).
        **attention_kwargs: passed to the attention constructor (``reduction=8``).

    Returns:
        A new model whose ``injection_report`` lists the sites and how each is attached.

    Example:
        >>> import torchvision
        >>> host = torchvision.models.resnet18()
        >>> model = inject_attention(host, "eca", after="basicblock", example_input=torch.randn(1, 3, 64, 64))
        >>> type(model) is type(host), len(model.injection_report.sites), model.injection_report.sites[0].attention
        (True, 8, 'layer1.0.eca')
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be an nn.Module, got {type(model).__name__}")
    spec, position = _selector_and_position(selector, where, after, before, branch)
    check_choice("mode", mode, MODES)
    check_choice("unreached", unreached, UNREACHED)
    check_choice("no_residual", no_residual, NO_RESIDUAL)
    if mode == "fx":
        warnings.warn(FX_MODE_REMOVED, FutureWarning, stacklevel=2)
    check_choice("init", init, INITS)
    _check_attention_spec(attention)
    chosen = resolve_selector(spec)

    previous = getattr(model, REPORT_ATTRIBUTE, None)
    previous = previous if isinstance(previous, InjectionReport) else None
    earlier_attention = [s.attention for s in previous.sites] if previous else []

    work = copy.deepcopy(model)  # every check and change below happens on this copy
    matches = find_matches(work, chosen, excluded=earlier_attention)
    if not matches:
        raise no_match_error(work, chosen, excluded=earlier_attention)
    names = [name for name, _ in matches]
    if position == "branch" and previous:
        again = [s.site for s in previous.sites if s.position == "branch" and s.site in names]
        if again:
            raise ValueError(f"'branch' position: block(s) {', '.join(again)} already carry branch attention")

    skipped: List[Tuple[str, str]] = []
    plans: Dict[str, BranchPlan] = {}
    if position == "branch":
        matches, plans = _plan_branches(matches, chosen.describe(), no_residual, skipped)

    example_args = as_example_args(example_input if example_input is not None else default_example_input(work))
    watched = [name for name, _ in matches] + [plan.end_name for plan in plans.values()]
    values = _example_run(work, example_args, watched, example_input is None)
    matches = _reached(matches, values, chosen.describe(), unreached, skipped)

    base = attention_base_name(attention)
    build = identity_factory(attention) if init == "identity" else attention
    sites = [
        _inject_site(work, name, module, values, plans.get(name), position, build, base, attention_kwargs, example_args)
        for name, module in matches
    ]
    sites = [record_init(site, work, init) for site in sites]
    report = InjectionReport(
        sites=(previous.sites if previous else []) + sites,
        mode="hook",
        selector=chosen.describe(),
        skipped=(previous.skipped if previous else []) + skipped,
    )
    setattr(work, REPORT_ATTRIBUTE, report)
    enable_scripting(work)
    return work


def _selector_and_position(selector, where, after, before, branch) -> Tuple[SelectorSpec, str]:
    given = {k: v for k, v in (("selector", selector), ("after", after), ("before", before), ("branch", branch)) if v is not None}
    if len(given) != 1:
        raise ValueError(
            "give exactly one selector: selector=... with where=..., or one of after=/before=/branch=; "
            f"got {', '.join(given) or 'none'}"
        )
    (keyword, spec), = given.items()
    return spec, resolve_position(None if keyword == "selector" else keyword, where)


def _check_attention_spec(attention: object) -> None:
    if isinstance(attention, str):
        ATTENTION.get(attention)  # ValueError naming the unknown name, with close matches
    elif not callable(attention):
        raise ValueError(
            "attention must be a registry name, an nn.Module class or a factory (channels) -> nn.Module, "
            f"got {type(attention).__name__} {attention!r}"
        )


def _plan_branches(matches, selector_text: str, no_residual: str, skipped: List[Tuple[str, str]]):
    """The matched blocks that have a residual branch, with their plans; the others go to ``skipped``."""
    plans: Dict[str, BranchPlan] = {}
    kept = []
    for name, module in matches:
        try:
            plans[name] = plan_branch(module, name)
        except NoResidualError as err:
            if no_residual == "error":
                raise NoResidualError(f"{err} (no_residual='error'; the default 'skip' leaves such blocks out)") from None
            skipped.append((name, "no residual addition"))
        else:
            kept.append((name, module))
    if not kept:
        first = plan_error(matches[0])
        raise NoResidualError(
            f"selector {selector_text} matched {len(matches)} block(s), none with a residual addition; "
            f"for example: {first}"
        )
    return kept, plans


def plan_error(match: Tuple[str, nn.Module]) -> str:
    try:
        plan_branch(match[1], match[0])
    except ValueError as err:
        return str(err)
    return ""


def _example_run(work: nn.Module, example_args: Tuple[Any, ...], watched: List[str], defaulted: bool) -> Dict[str, SiteValues]:
    try:
        return record_calls(work, example_args, watched)
    except Exception as err:
        first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
        given = describe_input(example_args)
        size = "×".join(map(str, default_input_size(work)))
        if defaulted:
            hint = (f"no example_input was given, so the model's own default size {size} was used; "
                    "pass example_input=... of a size the model takes")
        else:
            hint = f"pass an example_input the model takes (its default size is {size})"
        raise ValueError(f"running example_input ({given}) through {type(work).__name__} failed: "
                         f"{type(err).__name__}: {first_line}; {hint}") from None  # one clear error


def _reached(matches, values: Dict[str, SiteValues], selector_text: str, unreached: str, skipped):
    """Matched modules that ran; the others are an error (or, with ``unreached="warn"``, skipped)."""
    missing = [name for name, _ in matches if values[name].calls == 0]
    if missing and len(missing) == len(matches):
        raise ValueError(f"selector {selector_text} matched {', '.join(missing)}, but the example input "
                         "reached none of them (none is called in forward)")
    if missing:
        message = (f"selector {selector_text} matched {', '.join(missing)}, which the example input never reached "
                   "(data-dependent branches, or modules the forward does not call); their channels are unknown")
        if unreached == "error":
            raise ValueError(message + "; pass unreached='warn' to inject only where it reached")
        warnings.warn(message + "; no attention was put there", UserWarning, stacklevel=3)
        skipped.extend((name, "not reached by the example input") for name in missing)
    return [(name, module) for name, module in matches if values[name].calls > 0]


def first_argument(module: nn.Module) -> Optional[str]:
    """Name of the first parameter of ``module.forward`` (None for ``*args`` only)."""
    try:
        parameters = list(inspect.signature(module.forward).parameters.values())
    except (TypeError, ValueError):
        return None
    first = next((p for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)), None)
    return first.name if first is not None else None


def _build_attention(
    attention: AttentionSpec, channels: int, feature_map: Any, kwargs: Dict[str, Any], like: nn.Module, where: str
) -> nn.Module:
    """The attention module of one site: built for ``channels``, moved to the feature map's device
    and dtype, checked to keep its (B, C, H, W) shape, in ``like``'s train/eval mode."""
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


def feature_map_channels(value: Any, where: str) -> Tuple[int, tuple]:
    """C and the shape of ``value`` if it is a (B, C, H, W) tensor; ``ValueError`` naming ``where`` otherwise.

    Example:
        >>> feature_map_channels(torch.zeros(2, 8, 4, 4), "layer1.0 (after)")
        (8, (2, 8, 4, 4))
    """
    if not isinstance(value, torch.Tensor) or value.dim() != 4:
        raise ValueError(f"site {where}: attention needs a (B, C, H, W) feature map, found {describe_value(value)}")
    return int(value.shape[1]), tuple(value.shape)


def _inject_site(
    work: nn.Module,
    name: str,
    module: nn.Module,
    values: Dict[str, SiteValues],
    plan: Optional[BranchPlan],
    position: str,
    attention: AttentionSpec,
    base: str,
    kwargs: Dict[str, Any],
    example_args: Tuple[Any, ...],
) -> InjectionSite:
    where = f"{name!r} ({type(module).__name__}, {position})"
    record = values[name]
    if record.calls > 1:
        raise ValueError(
            f"site {where} is called {record.calls} times in one forward; "
            "inject_attention needs one call per matched module -- select its parent block instead"
        )
    hooked_name, argument = name, None
    if plan is not None:
        hooked_name = plan.end_name
        end = values[hooked_name]
        if end.calls != record.calls:
            raise ValueError(
                f"site {where}: the branch ends in {hooked_name!r}, which runs {end.calls} times per forward "
                "(a module shared with other blocks); a hook on it would act outside this block; "
                "use where='after' on the block instead"
            )
        record = end
    elif position == "before":
        argument = first_argument(module)
    feature_map = recorded_value(record, position, argument)
    channels_last = isinstance(feature_map, torch.Tensor) and is_channels_last(feature_map, record.last_leaf, example_args)
    view = to_channels_first(feature_map, channels_last) if channels_last else feature_map
    channels, _ = feature_map_channels(view, where)
    attn = _build_attention(attention, channels, view, kwargs, module, where)
    owner_path, child = choose_owner(work, name, base)
    work.get_submodule(owner_path).add_module(child, attn)
    target = qualified(owner_path, child)
    hook = (AttentionBeforeHook(attn, target, channels_last, argument) if position == "before"
            else AttentionAfterHook(attn, target, channels_last))
    attach_hook(work.get_submodule(hooked_name), hook)
    kind = "forward pre-hook" if position == "before" else "forward hook"
    return InjectionSite(
        name, type(module).__name__, position, channels, target, type(attn).__name__, count_parameters(attn),
        tuple(feature_map.shape), attached=f"{kind} on {hooked_name}", hooked=hooked_name, channels_last=channels_last,
    )
