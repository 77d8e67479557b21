"""Loading torchvision / timm state_dicts into plugattn backbones.

A backbone whose parameter names differ from the reference implementation defines
``convert_external_state_dict(self, state_dict, source) -> dict``; :func:`remap_keys` covers the
usual case of regex renames. Anything that still does not fit is reported, key by key.
"""
from __future__ import annotations

import re
from typing import Dict, Iterable, List, Mapping, Tuple

import torch
import torch.nn as nn

from .._validate import check_choice

SOURCES = ("torchvision", "timm", "official")  # "official": the paper authors' released code / checkpoint


def remap_keys(state_dict: Mapping[str, torch.Tensor], rules: Iterable[Tuple[str, str]]) -> Dict[str, torch.Tensor]:
    """Rename keys with ``re.sub`` rules applied in order (every rule to every key).

    Example:
        >>> remap_keys({"features.0.weight": torch.ones(1)}, [(r"^features\\.", "stem.")])
        {'stem.0.weight': tensor([1.])}
    """
    rules = [(re.compile(pattern), replacement) for pattern, replacement in rules]
    renamed: Dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        for pattern, replacement in rules:
            key = pattern.sub(replacement, key)
        renamed[key] = value
    return renamed


def pair_keys_in_order(state_dict: Mapping[str, torch.Tensor], model: nn.Module) -> Dict[str, torch.Tensor]:
    """Rename ``state_dict``'s keys to ``model``'s by position, for a reference implementation that
    registers the same tensors in the same order under an unrelated naming scheme (torchvision's
    MNASNet numbers one flat ``layers`` Sequential). Raises ``ValueError`` unless the counts and every
    paired shape agree, so a different architecture cannot slip through.

    Example:
        >>> theirs = nn.Sequential(nn.Conv2d(1, 2, 1)).state_dict()
        >>> sorted(pair_keys_in_order(theirs, nn.Sequential(nn.Sequential(nn.Conv2d(1, 2, 1)))))
        ['0.0.bias', '0.0.weight']
    """
    own = model.state_dict()
    if len(state_dict) != len(own):
        raise ValueError(f"cannot pair keys by position: {len(state_dict)} tensors given, the model has {len(own)}")
    paired: Dict[str, torch.Tensor] = {}
    for (their_key, value), (our_key, ours) in zip(state_dict.items(), own.items()):
        if tuple(value.shape) != tuple(ours.shape):
            raise ValueError(
                f"cannot pair keys by position: {their_key} {tuple(value.shape)} meets {our_key} {tuple(ours.shape)}"
            )
        paired[our_key] = value
    return paired


def _list(keys: List[str], limit: int = 20) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def load_external_weights(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> nn.Module:
    """Load a torchvision, timm or (``"official"``) the paper authors' ``state_dict`` of the same
    architecture into ``model`` (in place).

    Raises ``ValueError`` listing every missing, unexpected or mis-shaped key.

    Example:
        >>> import torchvision  # doctest: +SKIP
        >>> ours = load_external_weights(resnet50(), torchvision.models.resnet50().state_dict(), "torchvision")  # doctest: +SKIP
    """
    check_choice("source", source, SOURCES)
    convert = getattr(model, "convert_external_state_dict", None)
    mapped = dict(convert(dict(state_dict), source)) if convert is not None else dict(state_dict)
    own = model.state_dict()
    missing = [k for k in own if k not in mapped]
    unexpected = [k for k in mapped if k not in own]
    misshaped = [
        f"{k} (theirs {tuple(mapped[k].shape)}, ours {tuple(own[k].shape)})"
        for k in own
        if k in mapped and tuple(mapped[k].shape) != tuple(own[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {_list(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_list(unexpected)}")
    if misshaped:
        problems.append(f"mis-shaped keys: {_list(misshaped)}")
    if problems:
        raise ValueError(
            f"cannot load {source} weights into {type(model).__name__}: " + "; ".join(problems)
        )
    model.load_state_dict(mapped, strict=True)
    return model
