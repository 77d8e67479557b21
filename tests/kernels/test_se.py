"""SE kernels (plugattn/kernels/se_kernel.py): Triton squeeze/scale with the fp32 excitation against the
PyTorch reference, the reference against float64, dispatch, torch.library registration,
FX / compile / export."""
from __future__ import annotations

import importlib

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from .kernel_cases import (  # noqa: F401
    DTYPES, EMPTY_SHAPES, LAYOUTS, SHAPES, assert_backends_agree, assert_same_error, case_id, compare_with_float64,
    AUTO_RUNS_TRITON, assert_compiles_once, check_forward_gated, make_feature_map, poison_outputs, random_like, with_bad_values,
)

from plugattn import kernels
from plugattn.testing import assert_rel_close

# plugattn.kernels.se is the function, plugattn.kernels.se_kernel the file holding it
se_file = importlib.import_module("plugattn.kernels.se_kernel")

CASES = [(s, d, l) for s in SHAPES for d in DTYPES for l in LAYOUTS if d == torch.float32 or s == SHAPES[0]]
VARIANTS = [("relu", "sigmoid", True, False), ("silu", "hardsigmoid", False, True), ("silu", "sigmoid", True, True)]


def se_weights(channels: int, hidden: int, dtype: torch.dtype, bias: bool, conv_shaped: bool, seed: int = 5):
    """(w1, b1, w2, b2) like SELayer's fc1/fc2 (conv-shaped) or plain linear weights."""
    tail = (1, 1) if conv_shaped else ()
    w1 = random_like(torch.empty(hidden, channels, *tail, dtype=dtype), seed, scale=1.0)
    w2 = random_like(torch.empty(channels, hidden, *tail, dtype=dtype), seed + 1, scale=1.0)
    b1 = random_like(torch.empty(hidden, dtype=dtype), seed + 2) if bias else None
    b2 = random_like(torch.empty(channels, dtype=dtype), seed + 3) if bias else None
    return [w1, b1, w2, b2]


def _triton(act: str, gate: str):
    return lambda x, w1, b1, w2, b2: kernels.se(x, w1, b1, w2, b2, act, gate, backend="triton")


def _reference(act: str, gate: str):
    return lambda x, w1, b1, w2, b2: se_file.se_reference(x, w1, b1, w2, b2, act, gate)


@pytest.mark.triton
@pytest.mark.parametrize("shape,dtype,layout", CASES, ids=[case_id(*c) for c in CASES])
def test_triton_matches_reference(shape, dtype, layout):
    x = make_feature_map(shape, dtype, layout)
    weights = se_weights(shape[1], 3, dtype, bias=True, conv_shaped=True)
    compare_with_float64(_triton("relu", "sigmoid"), _reference("relu", "sigmoid"), [x, *weights])


@pytest.mark.triton
@pytest.mark.parametrize("act,gate,bias,conv_shaped", VARIANTS)
def test_activations_gates_and_bias(act, gate, bias, conv_shaped):
    x = make_feature_map((2, 19, 5, 3), torch.float32, "channels_last", seed=2)
    weights = se_weights(19, 4, torch.float32, bias, conv_shaped)
    compare_with_float64(_triton(act, gate), _reference(act, gate), [x, *weights])


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
)
def test_fuzz_shapes(n, c, h, w, hidden, variant, layout):
    act, gate, bias, conv_shaped = variant
    x = make_feature_map((n, c, h, w), torch.float32, layout, seed=n * 1000 + c * 100 + h * 10 + w)
    weights = se_weights(c, hidden, torch.float32, bias, conv_shaped)
    compare_with_float64(_triton(act, gate), _reference(act, gate), [x, *weights])


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
