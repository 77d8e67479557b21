"""Checks shared by the vision-transformer backbone tests (ViT, XCiT, PiT, CvT, PVT, CMT, PoolFormer, KVT).

The generic pieces (parameter counts, forward/backward, FX equality, weight loading, injection) are in
``cnn_checks``; this adds what differs for token models.
"""
from __future__ import annotations

from typing import Callable, Dict

import pytest
import timm
import torch
import torch.nn as nn

from cnn_checks import check_load_matches, count_params, on_meta, randomize_


def timm_param_count(name: str, **kwargs) -> int:
    """Parameters of timm's model ``name`` (built on meta: no weights allocated)."""
    with torch.device("meta"):
        return count_params(timm.create_model(name, pretrained=False, **kwargs))


def check_keys_match_timm(factory: Callable[..., nn.Module], timm_name: str, **kwargs) -> None:
    """Our state_dict (after conversion of timm's) has exactly timm's keys and shapes."""
    ours = on_meta(factory, **kwargs)
    with torch.device("meta"):
        theirs = timm.create_model(timm_name, pretrained=False, **kwargs).state_dict()
    convert = getattr(ours, "convert_external_state_dict", None)
    mapped: Dict[str, torch.Tensor] = convert(theirs, "timm") if convert is not None else theirs
    own = ours.state_dict()
    assert sorted(own) == sorted(mapped)
    assert all(own[k].shape == mapped[k].shape for k in own)


def check_timm_outputs_match(ours: nn.Module, timm_name: str, x: torch.Tensor, seed: int = 0,
                             on_meta: bool = False, **timm_kwargs) -> None:
    """Give timm's model seeded random weights (every tensor, so a misplaced one shows), load them into
    ours and compare eval outputs (relative error <= 1e-4). ``on_meta`` skips timm's own init (big
    models whose buffers are all floating point)."""
    if on_meta:
        with torch.device("meta"):
            reference = timm.create_model(timm_name, pretrained=False, **timm_kwargs)
        reference = reference.to_empty(device="cpu")
    else:
        reference = timm.create_model(timm_name, pretrained=False, **timm_kwargs)
    randomize_(reference, seed)
    check_load_matches(ours, reference, "timm", x)


def check_token_site_error(model: nn.Module, block: str, x: torch.Tensor) -> None:
    """Injecting after a block that produces tokens gives the injector's clear error."""
    from plugattn.inject import inject_attention

    with pytest.raises(ValueError, match=r"\(B, C, H, W\) feature map"):
        inject_attention(model, "eca", after=block, example_input=x)


def check_token_head_variants(factory: Callable[..., nn.Module], x: torch.Tensor, num_features: int) -> None:
    """num_classes=0 gives (B, num_features) features; other counts and in_chans are honoured (on meta)."""
    x = x.to("meta")
    assert on_meta(factory, num_classes=0)(x).shape == (x.shape[0], num_features)
    assert on_meta(factory, num_classes=7)(x).shape == (x.shape[0], 7)
    assert on_meta(factory, num_classes=5, in_chans=1)(x[:, :1]).shape == (x.shape[0], 5)
