"""Checks every attention module must pass; each test file calls them for its own module.

Each takes a zero-argument ``make`` that builds a fresh module, and the channel count it was built for.
"""
from __future__ import annotations

import copy
from typing import Callable

import torch
import torch.nn as nn

from plugattn.testing import assert_rel_close

Factory = Callable[[], nn.Module]


def perturb_parameters(module: nn.Module, seed: int = 0) -> nn.Module:
    """Move every parameter off its init (zero-initialised gates would hide bugs otherwise)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=generator, dtype=p.dtype))
    return module


def check_shape_and_dtype(make: Factory, channels: int) -> None:
    """(2, C, 32, 32) and the odd size (1, C, 7, 5) map to the same shape, dtype and device."""
    for shape in [(2, channels, 32, 32), (1, channels, 7, 5)]:
        module = make().eval()
        x = torch.randn(shape)
        y = module(x)
        assert y.shape == x.shape, f"{shape}: got {tuple(y.shape)}"
        assert y.dtype == x.dtype and y.device == x.device
        assert torch.isfinite(y).all()


def check_gradients_reach_every_parameter(make: Factory, channels: int) -> None:
    module = perturb_parameters(make()).train()
    x = torch.randn(2, channels, 9, 11, requires_grad=True)
    module(x).square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for name, p in module.named_parameters():
        assert p.grad is not None, f"no gradient reached {name}"
        assert torch.isfinite(p.grad).all(), f"non-finite gradient in {name}"
        assert p.grad.abs().sum() > 0, f"zero gradient in {name}"


def check_gradcheck(make: Factory, channels: int, size=(3, 4)) -> None:
    """torch.autograd.gradcheck in float64 on a tiny input, w.r.t. the input and every parameter."""
    module = perturb_parameters(make()).double().eval()
    x = torch.randn(2, channels, *size, dtype=torch.float64, requires_grad=True)
    params = tuple(module.parameters())
    names = [n for n, _ in module.named_parameters()]

    def fn(inp, *flat):
        overrides = dict(zip(names, flat))
        return torch.func.functional_call(module, overrides, (inp,))

    assert torch.autograd.gradcheck(fn, (x,) + params, eps=1e-6, atol=1e-5, rtol=1e-4)


def check_half_precision(make: Factory, channels: int) -> None:
    """fp16 and bf16 forward are finite and keep the dtype."""
    for dtype in (torch.float16, torch.bfloat16):
        module = make().to(dtype).eval()
        x = torch.randn(2, channels, 8, 6).to(dtype)
        y = module(x)
        assert y.dtype == dtype and torch.isfinite(y).all(), f"{dtype}"


def check_fx_trace(make: Factory, channels: int) -> None:
    """torch.fx.symbolic_trace of the module gives the same output as eager."""
    module = perturb_parameters(make()).eval()
    traced = torch.fx.symbolic_trace(module)
    x = torch.randn(2, channels, 10, 7)
    assert_rel_close(traced(x), module(x), what="fx trace")


def check_degenerate_inputs(make: Factory, channels: int) -> None:
    """1x1 maps (train and eval) and batch 1 in eval stay finite."""
    module = make()
    module.train()
    y = module(torch.randn(2, channels, 1, 1))
    assert torch.isfinite(y).all(), "1x1 map, train"
    module.eval()
    for shape in [(1, channels, 1, 1), (1, channels, 5, 5)]:
        y = module(torch.randn(shape))
        assert torch.isfinite(y).all(), f"{shape}, eval"


def check_deepcopy_equal(make: Factory, channels: int) -> None:
    module = perturb_parameters(make()).eval()
    clone = copy.deepcopy(module)
    x = torch.randn(1, channels, 6, 6)
    assert torch.equal(clone(x), module(x))


ALL_CHECKS = [
    check_shape_and_dtype,
    check_gradients_reach_every_parameter,
    check_gradcheck,
    check_half_precision,
    check_fx_trace,
    check_degenerate_inputs,
    check_deepcopy_equal,
]


def tile_2x2(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, 2H, 2W): the map repeated twice in each direction."""
    return x.repeat(1, 1, 2, 2)


def assert_tiling_invariant(module: nn.Module, channels: int) -> None:
    """Global-context modules gate by statistics that tiling leaves unchanged: y(tile(x)) == tile(y(x))."""
    module = module.eval()
    x = torch.randn(2, channels, 5, 6)
    assert_rel_close(module(tile_2x2(x)), tile_2x2(module(x)), what="2x2 tiling invariance")


def check_forward_gated(module, channels: int = 8) -> None:
    """``forward_gated(x, gate) = x + gate (module(x) - x)`` per channel: the identity at 0, the module
    at 1, a nonzero gradient for every gate entry, and a clear error for a gate of the wrong shape."""
    import pytest
    import torch

    from plugattn.testing import assert_rel_close

    x = torch.randn(2, channels, 5, 6)
    assert torch.equal(module.forward_gated(x, torch.zeros(channels)), x)
    assert_rel_close(module.forward_gated(x, torch.ones(channels)), module(x))
    gate = torch.linspace(-1.0, 2.0, channels).requires_grad_(True)
    out = module.forward_gated(x, gate)
    assert_rel_close(out, x + gate.view(1, channels, 1, 1) * (module(x) - x))
    out.square().sum().backward()
    assert gate.grad is not None and bool((gate.grad != 0).all())
    with pytest.raises(ValueError, match=r"gamma \(the per-channel gate\) must be None or a tensor of shape"):
        module.forward_gated(x, torch.zeros(channels - 1))
