"""Checks shared by the tests of the hybrid / hierarchical vision transformers (MobileViT, P2T,
EfficientFormer, Shift-ViT, CSWin, DilateFormer, BViT, MOAT). Import with ``from hybrid_checks import ...``;
the generic checks (parameter count, forward/backward, FX, weights) come from ``mobile_checks``."""
from __future__ import annotations

from typing import Callable, Tuple

import pytest
import torch
import torch.nn as nn

from plugattn.backbones import BACKBONES, create_backbone, list_backbones


def inject_attention(*args, **kwargs):
    try:
        from plugattn import inject_attention as inject
    except ImportError:
        from plugattn.inject import inject_attention as inject
    return inject(*args, **kwargs)


def assert_registered(name: str, model_class: type, reference_params: int) -> None:
    """In ``list_backbones("vit")``, created by name, reference count recorded in the registry."""
    assert name in list_backbones("vit")
    assert isinstance(create_backbone(name, num_classes=5), model_class)
    assert BACKBONES.get(name).info["params"] == reference_params


def assert_heads(factory: Callable[..., nn.Module], pooled_width: int, feature_shape: Tuple[int, ...],
                 size: int, default_input_size: int) -> None:
    """num_classes=7 gives 7 logits, num_classes=0 the pooled features; forward_features' shape;
    one input channel works; the default input size is recorded."""
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        assert factory(num_classes=7).eval()(x).shape == (1, 7)
        headless = factory(num_classes=0).eval()
        assert headless.num_classes == 0
        assert headless(x).shape == (1, pooled_width)
        assert tuple(headless.forward_features(x).shape) == (1,) + tuple(feature_shape)
        one_channel = factory(num_classes=3, in_chans=1).eval()
        assert one_channel(torch.randn(1, 1, size, size)).shape == (1, 3)
    assert headless.default_input_size == default_input_size


def assert_token_site_refused(model: nn.Module, block_class: str, size: int) -> None:
    """A block that outputs tokens (B, N, C) gets the injector's clear feature-map error."""
    with pytest.raises(ValueError, match=r"\(B, C, H, W\) feature map"):
        inject_attention(model.eval(), "eca", after=block_class, example_input=torch.randn(1, 3, size, size))
