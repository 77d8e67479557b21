"""SimAM kernels (plugattn/kernels/simam_kernel.py): Triton forward/backward against the PyTorch reference,
the reference against float64, dispatch, torch.library registration, FX / compile / export.

Hypothesis: see tests/kernels/kernel_cases.py (the seeds these tests passed with).

SimAM has no weights, and its input gradient's reductions over the plane do not cancel enough to
need the sum-of-|terms| bound: over 2,000 draws of the fuzz space PyTorch's fp32 reference stayed
within 0.26 of the plain fp32 tolerance, so the plain tolerance applies.
"""
from __future__ import annotations

import importlib

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from plugattn import kernels
from plugattn.testing import assert_rel_close

from .kernel_cases import (
    CASES, EMPTY_SHAPES, LAYOUTS, assert_backends_agree, assert_same_error, case_id,
    compare_with_float64, AUTO_RUNS_TRITON, assert_compiles_once, check_forward_gated,
    make_feature_map, random_like, with_bad_values,
)

pytestmark = pytest.mark.usefixtures("tensors_on_device")  # tensors on the GPU when there is one

# plugattn.kernels.simam is the function, plugattn.kernels.simam_kernel the file holding it
simam_file = importlib.import_module("plugattn.kernels.simam_kernel")


@pytest.mark.triton
@pytest.mark.parametrize("shape,dtype,layout", CASES, ids=[case_id(*c) for c in CASES])
def test_triton_matches_reference(shape, dtype, layout):
    x = make_feature_map(shape, dtype, layout)
    compare_with_float64(
        lambda t: kernels.simam(t, e_lambda=1e-4, backend="triton"),
        lambda t: simam_file.simam_reference(t, 1e-4),
        [x],
    )


@pytest.mark.triton
@pytest.mark.parametrize("layout", LAYOUTS)
def test_split_path_for_large_planes(monkeypatch, layout):
    """Planes above MAX_REGISTER_HW take the split path (partial Welford statistics merged on (N, C),
    split reductions, one program per tile); shrink the limit so a small plane takes it, with H·W
    spanning several 1024-wide blocks, hence several splits."""
    monkeypatch.setattr(simam_file, "MAX_REGISTER_HW", 16)
    x = make_feature_map((2, 3, 40, 41), torch.float32, layout, seed=3)
    compare_with_float64(lambda t: kernels.simam(t, backend="triton"), simam_file.simam_reference, [x])


def test_reference_matches_float64_and_gradcheck():
    x = make_feature_map((2, 4, 5, 6), torch.float64, "contiguous", seed=1)
    assert_rel_close(simam_file.simam_reference(x.float()), simam_file.simam_reference(x), dtype=torch.float32)
    assert torch.autograd.gradcheck(lambda t: kernels.simam(t, 0.1, backend="torch"), (x.requires_grad_(True),))


@pytest.mark.triton
@settings(max_examples=8, deadline=None)
@given(
    n=st.integers(1, 2), c=st.integers(1, 9), h=st.integers(1, 8), w=st.integers(1, 8),
    layout=st.sampled_from(LAYOUTS), e_lambda=st.sampled_from([1e-4, 0.3]), seed=st.integers(0, 2**31 - 1),
)
def test_fuzz_shapes(n, c, h, w, layout, e_lambda, seed):
    x = make_feature_map((n, c, h, w), torch.float32, layout, seed=seed)
    compare_with_float64(
        lambda t: kernels.simam(t, e_lambda, backend="triton"), lambda t: simam_file.simam_reference(t, e_lambda), [x],
        grad_seed=seed + 1,
    )


@pytest.mark.skipif(AUTO_RUNS_TRITON, reason="checks the CPU dispatch: 'auto' runs PyTorch for CPU tensors")
@pytest.mark.triton
def test_dispatch(monkeypatch):
    x = make_feature_map((1, 2, 3, 3), torch.float32, "contiguous")
    calls = []
    monkeypatch.setattr(simam_file, "simam_op", lambda t, lam, g: calls.append(lam) or simam_file.simam_reference(t, lam, g))
    kernels.simam(x, backend="auto")  # CPU tensor: auto means PyTorch
    kernels.simam(x, backend="torch")
    assert calls == []
    kernels.simam(x, backend="triton")
    with kernels.use_backend("triton"):
        kernels.simam(x)
    assert calls == [1e-4, 1e-4]
    with pytest.raises(RuntimeError, match="dtypes"):
        kernels.simam(x.double(), backend="triton")
    with pytest.raises(ValueError, match="backend"):
        kernels.simam(x, backend="cuda")
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        kernels.simam(x[0], backend="torch")


@pytest.mark.triton
def test_opcheck():
    x = make_feature_map((1, 3, 4, 5), torch.float32, "channels_last")
    torch.library.opcheck(simam_file.simam_op, (x.requires_grad_(True), 1e-4, None))
    torch.library.opcheck(simam_file.simam_backward_op, (torch.randn(1, 3, 4, 5) + 0.1, x.detach(), 1e-4, None))


class _UsesSimAM(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return kernels.simam(x, 1e-4, backend="triton")


@pytest.mark.triton
def test_fx_symbolic_trace():
    graph_module = torch.fx.symbolic_trace(_UsesSimAM())
    assert any(node.op == "call_function" and node.target is kernels.simam for node in graph_module.graph.nodes)
    x = make_feature_map((1, 3, 4, 4), torch.float32, "contiguous")
    assert_rel_close(graph_module(x), _UsesSimAM()(x))


@pytest.mark.triton
def test_torch_compile_matches_eager():
    module = _UsesSimAM()
    compiled = torch.compile(module, fullgraph=True)
    x = make_feature_map((2, 3, 4, 5), torch.float32, "contiguous").requires_grad_(True)
    x_compiled = x.detach().clone().requires_grad_(True)
    eager, out = module(x), compiled(x_compiled)
    assert_rel_close(out, eager)
    grad = torch.randn_like(x) + 0.1
    eager.backward(grad)
    out.backward(grad)
    assert_rel_close(x_compiled.grad, x.grad)


@pytest.mark.triton
def test_dynamic_shapes_compile_once():
    """One dynamic-shape graph serves every size (the launch plan's tile constants never pin one)."""
    assert_compiles_once(_UsesSimAM(), [(2, 6, 4, 5), (3, 9, 7, 3), (4, 17, 9, 11)])


@pytest.mark.triton
def test_torch_export():
    x = make_feature_map((1, 3, 4, 5), torch.float32, "contiguous")
    exported = torch.export.export(_UsesSimAM(), (x,))
    assert any(node.target is torch.ops.plugattn.simam.default for node in exported.graph.nodes)
    assert_rel_close(exported.module()(x), _UsesSimAM()(x))


@pytest.mark.skipif(AUTO_RUNS_TRITON, reason="checks the CPU dispatch: 'auto' runs PyTorch for CPU tensors")
@pytest.mark.triton
def test_module_dispatches_to_the_kernel(monkeypatch):
    """SimAM (the module) runs the Triton op under backend 'triton' and the reference under 'auto' on CPU."""
    from plugattn.attention import SimAM

    module = SimAM(5)
    x = make_feature_map((2, 5, 4, 3), torch.float32, "contiguous")
    calls = []
    real_op = simam_file.simam_op
    monkeypatch.setattr(simam_file, "simam_op", lambda t, lam, g: calls.append(lam) or real_op(t, lam, g))
    reference = module(x)
    assert calls == []
    with kernels.use_backend("triton"):
        assert_rel_close(module(x), reference)
    assert calls == [1e-4]


@pytest.mark.triton
@pytest.mark.parametrize("split", [False, True], ids=["plane", "split"])
@pytest.mark.parametrize("gamma_kind", ["random", "zero"])
def test_gated_matches_reference(monkeypatch, split, gamma_kind):
    """x + gamma (simam(x) - x) on both paths: forward and the gradients of x and gamma."""
    if split:
        monkeypatch.setattr(simam_file, "MAX_REGISTER_HW", 16)
    x = make_feature_map((2, 5, 9, 10), torch.float32, "channels_last" if split else "contiguous", seed=4)
    gamma = random_like(torch.empty(5), 9) if gamma_kind == "random" else torch.zeros(5)
    compare_with_float64(
        lambda t, g: kernels.simam(t, 0.01, backend="triton", gamma=g),
        lambda t, g: simam_file.simam_reference(t, 0.01, g), [x, gamma],
    )


@pytest.mark.triton
def test_gated_zero_is_the_identity():
    x = make_feature_map((2, 7, 4, 5), torch.float32, "channels_last")
    assert torch.equal(kernels.simam(x, backend="triton", gamma=torch.zeros(7)), x)


def _simam_call(x, gamma=None, backend=None, e_lambda=1e-4):
    return kernels.simam(x, e_lambda, backend, gamma=gamma)


@pytest.mark.triton
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # numpy, in the interpreter
@pytest.mark.parametrize("split", [False, True], ids=["plane", "split"])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_nan_and_inf_where_the_reference_puts_them(monkeypatch, split, layout):
    if split:
        monkeypatch.setattr(simam_file, "MAX_REGISTER_HW", 16)
    x = with_bad_values(make_feature_map((3, 6, 4, 5), torch.float32, layout))
    assert_backends_agree(_simam_call, [x, random_like(torch.empty(6), 3)])


@pytest.mark.triton
@pytest.mark.parametrize("shape", EMPTY_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_empty_maps_as_the_reference(shape):
    x = make_feature_map(shape, torch.float32, "contiguous")
    assert_backends_agree(_simam_call, [x, random_like(torch.empty(shape[1]), 3)])


@pytest.mark.triton
@pytest.mark.parametrize("e_lambda", [0.0, -1e-4, float("nan"), float("inf"), True])
def test_invalid_e_lambda_gives_the_same_error(e_lambda):
    x = make_feature_map((1, 3, 4, 4), torch.float32, "contiguous")
    assert_same_error(lambda t, backend: kernels.simam(t, e_lambda, backend), [x], ValueError,
                      "e_lambda must be a finite number > 0")


@pytest.mark.triton
def test_mixed_dtypes_give_the_same_error():
    x = make_feature_map((1, 4, 3, 3), torch.float16, "contiguous")
    assert_same_error(_simam_call, [x, torch.ones(4)], ValueError, "gamma has dtype float32 but x has float16")


def test_module_forward_gated():
    """SimAM.forward_gated(x, gate) == x + gate (SimAM(x) - x), gradients to the gate."""
    from plugattn.attention import SimAM

    check_forward_gated(SimAM(12), 12)
