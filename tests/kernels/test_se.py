"""SE kernels (plugattn/kernels/se_kernel.py): Triton squeeze/scale with the fp32 excitation against the
PyTorch reference, the reference against float64, dispatch, torch.library registration,
FX / compile / export.

Hypothesis: see tests/kernels/kernel_cases.py (the seeds these tests passed with).
"""
from __future__ import annotations

import importlib

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from plugattn import kernels
from plugattn.testing import assert_rel_close

from .kernel_cases import (
    CASES, EMPTY_SHAPES, LAYOUTS, AUTO_RUNS_TRITON, assert_backends_agree, assert_compiles_once,
    assert_same_error, case_id, check_forward_gated, compare_with_float64, make_feature_map,
    random_like, sigmoid_slope_abs, with_bad_values,
)

pytestmark = pytest.mark.usefixtures("tensors_on_device")  # tensors on the GPU when there is one

# plugattn.kernels.se is the function, plugattn.kernels.se_kernel the file holding it
se_file = importlib.import_module("plugattn.kernels.se_kernel")

VARIANTS = [("relu", "sigmoid", True, False), ("silu", "hardsigmoid", False, True), ("silu", "sigmoid", True, True)]


def se_weights(channels: int, hidden: int, dtype: torch.dtype, bias: bool, conv_shaped: bool, seed: int = 5):
    """(w1, b1, w2, b2) like SELayer's fc1/fc2 (conv-shaped) or plain linear weights."""
    tail = (1, 1) if conv_shaped else ()
    w1 = random_like(torch.empty(hidden, channels, *tail, dtype=dtype), seed, scale=1.0)
    w2 = random_like(torch.empty(channels, hidden, *tail, dtype=dtype), seed + 1, scale=1.0)
    b1 = random_like(torch.empty(hidden, dtype=dtype), seed + 2) if bias else None
    b2 = random_like(torch.empty(channels, dtype=dtype), seed + 3) if bias else None
    return [w1, b1, w2, b2]


def _value_and_slope(fn, u: torch.Tensor):
    """fn(u) and fn'(u), elementwise."""
    with torch.enable_grad():
        u = u.detach().requires_grad_(True)
        value = fn(u)
        (slope,) = torch.autograd.grad(value.sum(), u)
    return value.detach(), slope


def _slope_abs(name: str, pre: torch.Tensor, pre_abs: torch.Tensor) -> torch.Tensor:
    """Magnitude of the slope of ``name`` at ``pre`` as an implementation forms it: the absolute values
    of the slope's own terms plus its sensitivity |f''| to the pre-activation (whose Σ|terms| is
    ``pre_abs``). relu and hardsigmoid have piecewise-constant slopes; sigmoid's s - s² and silu's
    σ + x·σ - x·σ² cancel (near saturation, and near silu's minimum at x = -1.28)."""
    if name == "sigmoid":
        return sigmoid_slope_abs(torch.sigmoid(pre), pre_abs)
    if name == "silu":
        sig = torch.sigmoid(pre)
        curvature = sig * (1 - sig) * (2 + pre * (1 - 2 * sig))  # silu''
        return sig + pre.abs() * (sig + sig * sig) + curvature.abs() * pre_abs
    fn = se_file._gate if name in se_file.GATES else se_file._activation
    return _value_and_slope(lambda u: fn(name, u), pre)[1].abs()


def weight_grad_abs_terms(act: str, gate: str):
    """Σ|terms| of the weight and bias gradients, every sum expanded into its terms (float64), following
    the backward of plugattn/kernels/se.py: δ = Σ_hw(g·x)·gate'(·), ∂W2 = δᵀh, ∂b2 = Σ_n δ,
    ε = (δ W2)·act'(·), ∂W1 = εᵀm, ∂b1 = Σ_n ε, with m = mean_hw(x). Each factor is replaced by the sum of
    its terms' absolute values: Σ_hw|g·x|, |W2|, mean_hw|x|, the expanded pre-activations
    |W1| mean|x| + |b1| and |W2| |h| + |b2|, h by |act'|·(its pre-activation's) plus whatever of act is
    not linear, and the slopes by ``_slope_abs``."""

    def terms(inputs: list, grad: torch.Tensor) -> dict:
        x, w1, b1, w2, b2 = inputs
        w1_2d, w2_2d = w1.reshape(w1.shape[0], -1), w2.reshape(w2.shape[0], -1)
        mean, mean_abs = x.mean(dim=(2, 3)), x.abs().mean(dim=(2, 3))  # (N, C)
        hidden_pre = F.linear(mean, w1_2d, b1)  # (N, hidden)
        hidden_pre_abs = F.linear(mean_abs, w1_2d.abs(), None if b1 is None else b1.abs())
        hidden, act_slope = _value_and_slope(lambda u: se_file._activation(act, u), hidden_pre)
        hidden_abs = act_slope.abs() * hidden_pre_abs + (hidden - act_slope * hidden_pre).abs()
        gate_pre = F.linear(hidden, w2_2d, b2)  # (N, C)
        gate_pre_abs = F.linear(hidden_abs, w2_2d.abs(), None if b2 is None else b2.abs())
        delta = (grad * x).abs().sum(dim=(2, 3)) * _slope_abs(gate, gate_pre, gate_pre_abs)  # (N, C)
        epsilon = (delta @ w2_2d.abs()) * _slope_abs(act, hidden_pre, hidden_pre_abs)  # (N, hidden)
        out = {1: (epsilon.t() @ mean_abs).reshape(w1.shape), 3: (delta.t() @ hidden_abs).reshape(w2.shape)}
        if b1 is not None:
            out[2] = epsilon.sum(0)
        if b2 is not None:
            out[4] = delta.sum(0)
        return out

    return terms


def compare_se(x: torch.Tensor, weights: list, act: str, gate: str, grad_seed: int = 123) -> None:
    compare_with_float64(_triton(act, gate), _reference(act, gate), [x, *weights], grad_seed=grad_seed,
                         abs_terms=weight_grad_abs_terms(act, gate))


def _triton(act: str, gate: str):
    return lambda x, w1, b1, w2, b2: kernels.se(x, w1, b1, w2, b2, act, gate, backend="triton")


def _reference(act: str, gate: str):
    return lambda x, w1, b1, w2, b2: se_file.se_reference(x, w1, b1, w2, b2, act, gate)


@pytest.mark.triton
@pytest.mark.parametrize("shape,dtype,layout", CASES, ids=[case_id(*c) for c in CASES])
def test_triton_matches_reference(shape, dtype, layout):
    x = make_feature_map(shape, dtype, layout)
    weights = se_weights(shape[1], 3, dtype, bias=True, conv_shaped=True)
    compare_se(x, weights, "relu", "sigmoid")


@pytest.mark.triton
@pytest.mark.parametrize("act,gate,bias,conv_shaped", VARIANTS)
def test_activations_gates_and_bias(act, gate, bias, conv_shaped):
    x = make_feature_map((2, 19, 5, 3), torch.float32, "channels_last", seed=2)
    weights = se_weights(19, 4, torch.float32, bias, conv_shaped)
    compare_se(x, weights, act, gate)


def test_reference_matches_float64_and_gradcheck():
    x = make_feature_map((2, 6, 3, 4), torch.float64, "contiguous", seed=1)
    weights = se_weights(6, 2, torch.float64, bias=True, conv_shaped=False)
    low = [w.float() for w in weights]
    assert_rel_close(se_file.se_reference(x.float(), *low), se_file.se_reference(x, *weights), dtype=torch.float32)
    inputs = tuple(t.requires_grad_(True) for t in (x, *weights))
    assert torch.autograd.gradcheck(lambda *t: kernels.se(*t, act="silu", gate="hardsigmoid", backend="torch"), inputs)


@pytest.mark.triton
@settings(max_examples=8, deadline=None)
@given(
    n=st.integers(1, 2), c=st.integers(1, 40), h=st.integers(1, 6), w=st.integers(1, 6),
    hidden=st.integers(1, 5), variant=st.sampled_from(VARIANTS), layout=st.sampled_from(LAYOUTS),
    seed=st.integers(0, 2**31 - 1),
)
def test_fuzz_shapes(n, c, h, w, hidden, variant, layout, seed):
    act, gate, bias, conv_shaped = variant
    x = make_feature_map((n, c, h, w), torch.float32, layout, seed=seed)
    weights = se_weights(c, hidden, torch.float32, bias, conv_shaped, seed=seed + 1)
    compare_se(x, weights, act, gate, grad_seed=seed + 5)


@pytest.mark.skipif(AUTO_RUNS_TRITON, reason="checks the CPU dispatch: 'auto' runs PyTorch for CPU tensors")
@pytest.mark.triton
def test_dispatch_and_bad_arguments(monkeypatch):
    x = make_feature_map((1, 4, 3, 3), torch.float32, "contiguous")
    weights = se_weights(4, 2, torch.float32, bias=True, conv_shaped=False)
    calls = []
    monkeypatch.setattr(se_file, "se_op", lambda *a: calls.append(1) or se_file.se_reference(*a[:5], a[6], a[7], a[5]))
    kernels.se(x, *weights)  # process default "auto", CPU tensor: PyTorch
    assert calls == []
    with kernels.use_backend("triton"):
        kernels.se(x, *weights)
    assert calls == [1]
    with pytest.raises(ValueError, match="act must be one of"):
        kernels.se(x, *weights, act="gelu")
    with pytest.raises(ValueError, match="hardsigmoid"):
        kernels.se(x, *weights, gate="hard_sigmoid")
    with pytest.raises(ValueError, match="w2 must be"):
        kernels.se(x, weights[0], weights[1], torch.randn(5, 2), None)


@pytest.mark.triton
def test_opcheck():
    x = make_feature_map((1, 5, 3, 4), torch.float32, "channels_last")
    weights = se_weights(5, 2, torch.float32, bias=True, conv_shaped=True)
    args = (x, *weights, None, "silu", "sigmoid")
    torch.library.opcheck(se_file.se_op, tuple(t.requires_grad_(True) if torch.is_tensor(t) else t for t in args))
    grad = torch.randn(1, 5, 3, 4) + 0.1
    torch.library.opcheck(se_file.se_backward_op, (grad, x.detach(), *[w.detach() for w in weights], None, "relu", "sigmoid"))


class _UsesSE(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = torch.nn.Conv2d(6, 2, 1)
        self.fc2 = torch.nn.Conv2d(2, 6, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return kernels.se(x, self.fc1.weight, self.fc1.bias, self.fc2.weight, self.fc2.bias, backend="triton")


@pytest.mark.triton
def test_fx_symbolic_trace():
    module = _UsesSE()
    graph_module = torch.fx.symbolic_trace(module)
    assert any(node.op == "call_function" and node.target is kernels.se for node in graph_module.graph.nodes)
    x = make_feature_map((1, 6, 4, 4), torch.float32, "contiguous")
    assert_rel_close(graph_module(x), module(x))


@pytest.mark.triton
def test_torch_compile_matches_eager():
    module = _UsesSE()
    compiled = torch.compile(module, fullgraph=True)
    x = make_feature_map((2, 6, 4, 5), torch.float32, "contiguous").requires_grad_(True)
    x_compiled = x.detach().clone().requires_grad_(True)
    params = [x, module.fc1.weight, module.fc1.bias, module.fc2.weight, module.fc2.bias]
    eager = module(x)
    eager_grads = torch.autograd.grad(eager, params, torch.ones_like(eager) * 0.7)
    out = compiled(x_compiled)
    compiled_grads = torch.autograd.grad(out, [x_compiled, *params[1:]], torch.ones_like(out) * 0.7)
    assert_rel_close(out, eager)
    for a, b in zip(compiled_grads, eager_grads):
        assert_rel_close(a, b, what="gradient")


@pytest.mark.triton
def test_dynamic_shapes_compile_once():
    """One dynamic-shape graph serves every size (the launch plan's tile constants never pin one)."""
    assert_compiles_once(_UsesSE(), [(2, 6, 4, 5), (3, 6, 7, 3), (4, 6, 9, 11)])


@pytest.mark.triton
def test_torch_export():
    x = make_feature_map((1, 6, 4, 5), torch.float32, "contiguous")
    module = _UsesSE()
    exported = torch.export.export(module, (x,))
    assert any(node.target is torch.ops.plugattn.se.default for node in exported.graph.nodes)
    assert_rel_close(exported.module()(x), module(x))


@pytest.mark.skipif(AUTO_RUNS_TRITON, reason="checks the CPU dispatch: 'auto' runs PyTorch for CPU tensors")
@pytest.mark.triton
@pytest.mark.parametrize("options", [{}, {"act": "silu", "gate": "hardsigmoid", "bias": False}])
def test_module_dispatches_to_the_kernel(monkeypatch, options):
    """SELayer runs the Triton op under backend 'triton' and the reference under 'auto' on CPU."""
    from plugattn.attention import SELayer

    module = SELayer(12, reduction=4, **options)
    x = make_feature_map((2, 12, 4, 3), torch.float32, "contiguous")
    calls = []
    real_op = se_file.se_op
    monkeypatch.setattr(se_file, "se_op", lambda *a: calls.append(a[-2:]) or real_op(*a))
    reference = module(x)
    assert calls == []
    with kernels.use_backend("triton"):
        assert_rel_close(module(x), reference)
    assert calls == [(module.act_name, module.gate_name)]


@pytest.mark.triton
@pytest.mark.parametrize("gamma_kind", ["random", "zero"])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_gated_matches_reference(gamma_kind, layout):
    """x + gamma (se(x) - x): forward and the gradients of x, every weight and gamma."""
    x = make_feature_map((2, 19, 5, 3), torch.float32, layout, seed=4)
    weights = se_weights(19, 4, torch.float32, bias=True, conv_shaped=True)
    gamma = random_like(torch.empty(19), 9) if gamma_kind == "random" else torch.zeros(19)
    compare_with_float64(
        lambda t, w1, b1, w2, b2, g: kernels.se(t, w1, b1, w2, b2, "silu", "sigmoid", backend="triton", gamma=g),
        lambda t, w1, b1, w2, b2, g: se_file.se_reference(t, w1, b1, w2, b2, "silu", "sigmoid", g),
        [x, *weights, gamma],
    )


@pytest.mark.triton
def test_gated_zero_is_the_identity():
    x = make_feature_map((2, 7, 4, 5), torch.float32, "channels_last")
    weights = se_weights(7, 2, torch.float32, bias=True, conv_shaped=False)
    assert torch.equal(kernels.se(x, *weights, backend="triton", gamma=torch.zeros(7)), x)


def _se_call(x, w1, b1, w2, b2, gamma=None, backend=None):
    return kernels.se(x, w1, b1, w2, b2, backend=backend, gamma=gamma)


@pytest.mark.triton
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # numpy, in the interpreter
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_nan_and_inf_where_the_reference_puts_them(layout):
    x = with_bad_values(make_feature_map((3, 6, 4, 5), torch.float32, layout))
    assert_backends_agree(_se_call, [x, *se_weights(6, 2, torch.float32, bias=True, conv_shaped=True)])


@pytest.mark.triton
@pytest.mark.parametrize("shape", EMPTY_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_empty_maps_as_the_reference(shape):
    x = make_feature_map(shape, torch.float32, "contiguous")
    gamma = random_like(torch.empty(shape[1]), 3)
    assert_backends_agree(_se_call, [x, *se_weights(shape[1], 2, torch.float32, bias=True, conv_shaped=True), gamma])


@pytest.mark.triton
def test_mixed_dtypes_give_the_same_error():
    x = make_feature_map((1, 4, 3, 3), torch.float16, "contiguous")
    weights = se_weights(4, 2, torch.float32, bias=True, conv_shaped=False)
    assert_same_error(_se_call, [x, *weights], ValueError, "w1 has dtype float32 but x has float16")
    assert_same_error(_se_call, [x.float(), *weights, torch.ones(4, dtype=torch.float16)], ValueError, "gamma has dtype")
    assert_same_error(_se_call, [x.float(), *weights, torch.ones(5)], ValueError, r"gamma \(the per-channel gate\) must be None or a tensor of shape \(C=4,\)")


def test_module_forward_gated():
    """SELayer.forward_gated(x, gate) == x + gate (SELayer(x) - x), gradients to the gate."""
    from plugattn.attention import SELayer

    check_forward_gated(SELayer(12, reduction=4), 12)
