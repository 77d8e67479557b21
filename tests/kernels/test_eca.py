"""ECA kernels (plugattn/kernels/eca_kernel.py): Triton pooling/scale forward and backward against the PyTorch reference,
the reference against float64, dispatch, torch.library registration, FX / compile / export.

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
from plugattn.testing import assert_rel_close, sum_condition

from .kernel_cases import (
    CASES, EMPTY_SHAPES, LAYOUTS, AUTO_RUNS_TRITON, assert_backends_agree, assert_compiles_once,
    assert_same_error, case_id, check_forward_gated, compare_with_float64, make_feature_map,
    random_like, sigmoid_slope_abs, with_bad_values,
)

pytestmark = pytest.mark.usefixtures("tensors_on_device")  # tensors on the GPU when there is one

# plugattn.kernels.eca is the function, plugattn.kernels.eca_kernel the file holding it
eca_file = importlib.import_module("plugattn.kernels.eca_kernel")


def conv_weight(k: int, dtype: torch.dtype, seed: int = 7) -> torch.Tensor:
    return random_like(torch.empty(1, 1, k, dtype=dtype), seed, scale=1.0)


def weight_grad_abs_terms(inputs: list, grad: torch.Tensor) -> dict:
    """Σ|terms| of the weight gradient, every sum expanded into its terms (float64):
    ∂L/∂w_j = Σ_{n,c} s'(z_nc) · Σ_hw(g·x)_nc · m_n,c+j-k//2 with m = mean_hw(x), so
    Σ|terms|_j = Σ_{n,c} |s'|_nc · Σ_hw|g·x|_nc · mean_hw|x|_n,c+j-k//2, where |s'| is the magnitude of the
    slope's own terms (``sigmoid_slope_abs``: s' = s - s² cancels near saturation)."""
    x, weight = inputs
    k = weight.shape[-1]
    s = torch.sigmoid(F.conv1d(x.mean(dim=(2, 3)).unsqueeze(1), weight, padding=k // 2))  # (N, 1, C)
    mean_abs = x.abs().mean(dim=(2, 3)).unsqueeze(1)  # (N, 1, C)
    logit_abs = F.conv1d(mean_abs, weight.abs(), padding=k // 2)
    logit_grad = (grad * x).abs().sum(dim=(2, 3)).unsqueeze(1) * sigmoid_slope_abs(s, logit_abs)  # (N, 1, C)
    return {1: torch.nn.grad.conv1d_weight(mean_abs, weight.shape, logit_grad, padding=k // 2)}


def compare_eca(x: torch.Tensor, weight: torch.Tensor, grad_seed: int = 123) -> None:
    compare_with_float64(lambda t, w: kernels.eca(t, w, backend="triton"), eca_file.eca_reference, [x, weight],
                         grad_seed=grad_seed, abs_terms=weight_grad_abs_terms)


@pytest.mark.triton
@pytest.mark.parametrize("shape,dtype,layout", CASES, ids=[case_id(*c) for c in CASES])
def test_triton_matches_reference(shape, dtype, layout):
    compare_eca(make_feature_map(shape, dtype, layout), conv_weight(3, dtype))


@pytest.mark.triton
@pytest.mark.parametrize("k", [1, 5, 9])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_several_channel_blocks_and_kernel_sizes(k, layout):
    """70 channels span several channel blocks of a channels-last tile (64 wide); k up to 9."""
    compare_eca(make_feature_map((2, 70, 3, 4), torch.float32, layout, seed=k), conv_weight(k, torch.float32))


def test_reference_matches_float64_and_gradcheck():
    x = make_feature_map((2, 9, 3, 4), torch.float64, "contiguous", seed=1)
    w = conv_weight(5, torch.float64)
    assert_rel_close(eca_file.eca_reference(x.float(), w.float()), eca_file.eca_reference(x, w), dtype=torch.float32)
    inputs = (x.requires_grad_(True), w.requires_grad_(True))
    assert torch.autograd.gradcheck(lambda t, v: kernels.eca(t, v, backend="torch"), inputs)


@pytest.mark.triton
@settings(max_examples=8, deadline=None)
@given(
    n=st.integers(1, 2), c=st.integers(1, 40), h=st.integers(1, 6), w=st.integers(1, 6),
    k=st.sampled_from([1, 3, 5, 7]), layout=st.sampled_from(LAYOUTS), seed=st.integers(0, 2**31 - 1),
)
def test_fuzz_shapes(n, c, h, w, k, layout, seed):
    compare_eca(make_feature_map((n, c, h, w), torch.float32, layout, seed=seed), conv_weight(k, torch.float32, seed + 1),
                grad_seed=seed + 2)


@pytest.mark.triton
@pytest.mark.parametrize("layout", LAYOUTS)
def test_cancelling_weight_gradient_is_held_to_its_condition(layout):
    """The draw that failed CI by chance (issue 13): at k = 1 the weight gradient of this 1x20x2x4 map
    cancels (condition > 1000), so no fp32 implementation meets 1e-5 relative to the result; PyTorch's own
    fp32 reference missed it in one layout and met it in another. It is held to 1e-5 relative to the sum
    of the absolute values of its terms instead, in every layout alike."""
    x = make_feature_map((1, 20, 2, 4), torch.float32, layout, seed=3024)
    weight = conv_weight(1, torch.float32)
    exact = [x.detach().double().requires_grad_(True), weight.detach().double().requires_grad_(True)]
    y = eca_file.eca_reference(*exact)
    grad = random_like(y, 123).double()
    y.backward(grad)
    terms = weight_grad_abs_terms([t.detach() for t in exact], grad)[1]
    assert sum_condition(exact[1].grad, terms) > 1000
    compare_eca(x, weight)


@pytest.mark.skipif(AUTO_RUNS_TRITON, reason="checks the CPU dispatch: 'auto' runs PyTorch for CPU tensors")
@pytest.mark.triton
def test_dispatch_and_bad_weight(monkeypatch):
    x = make_feature_map((1, 4, 3, 3), torch.float32, "contiguous")
    w = conv_weight(3, torch.float32)
    calls = []
    monkeypatch.setattr(eca_file, "eca_op", lambda t, v, g: calls.append(1) or eca_file.eca_reference(t, v, g))
    kernels.eca(x, w)  # process default "auto", CPU tensor: PyTorch
    assert calls == []
    kernels.eca(x, w, backend="triton")
    assert calls == [1]
    with pytest.raises(ValueError, match=r"weight must be .*\(1, 1, k\)"):
        kernels.eca(x, torch.randn(1, 1, 4), backend="torch")


@pytest.mark.triton
def test_opcheck():
    x = make_feature_map((1, 5, 3, 4), torch.float32, "channels_last")
    w = conv_weight(3, torch.float32)
    torch.library.opcheck(eca_file.eca_op, (x.requires_grad_(True), w.requires_grad_(True), None))
    torch.library.opcheck(eca_file.eca_backward_op, (torch.randn(1, 5, 3, 4) + 0.1, x.detach(), w.detach(), None))


class _UsesECA(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(conv_weight(3, torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return kernels.eca(x, self.weight, backend="triton")


@pytest.mark.triton
def test_fx_symbolic_trace():
    module = _UsesECA()
    graph_module = torch.fx.symbolic_trace(module)
    assert any(node.op == "call_function" and node.target is kernels.eca for node in graph_module.graph.nodes)
    x = make_feature_map((1, 6, 4, 4), torch.float32, "contiguous")
    assert_rel_close(graph_module(x), module(x))


@pytest.mark.triton
def test_torch_compile_matches_eager():
    module = _UsesECA()
    compiled = torch.compile(module, fullgraph=True)
    x = make_feature_map((2, 6, 4, 5), torch.float32, "contiguous").requires_grad_(True)
    x_compiled = x.detach().clone().requires_grad_(True)
    eager = module(x)
    eager_weight_grad = torch.autograd.grad(eager, (x, module.weight), torch.ones_like(eager) * 0.7)
    out = compiled(x_compiled)
    compiled_grads = torch.autograd.grad(out, (x_compiled, module.weight), torch.ones_like(out) * 0.7)
    assert_rel_close(out, eager)
    for a, b in zip(compiled_grads, eager_weight_grad):
        assert_rel_close(a, b, what="gradient")


@pytest.mark.triton
def test_dynamic_shapes_compile_once():
    """One dynamic-shape graph serves every size (the launch plan's tile constants never pin one)."""
    assert_compiles_once(_UsesECA(), [(2, 6, 4, 5), (3, 9, 7, 3), (4, 17, 9, 11)])


@pytest.mark.triton
def test_torch_export():
    x = make_feature_map((1, 6, 4, 5), torch.float32, "contiguous")
    module = _UsesECA()
    exported = torch.export.export(module, (x,))
    assert any(node.target is torch.ops.plugattn.eca.default for node in exported.graph.nodes)
    assert_rel_close(exported.module()(x), module(x))


@pytest.mark.skipif(AUTO_RUNS_TRITON, reason="checks the CPU dispatch: 'auto' runs PyTorch for CPU tensors")
@pytest.mark.triton
def test_module_dispatches_to_the_kernel(monkeypatch):
    """ECALayer runs the Triton op under backend 'triton' and the reference under 'auto' on CPU."""
    from plugattn.attention import ECALayer

    module = ECALayer(12)
    x = make_feature_map((2, 12, 4, 3), torch.float32, "channels_last")
    calls = []
    real_op = eca_file.eca_op
    monkeypatch.setattr(eca_file, "eca_op", lambda t, v, g: calls.append(1) or real_op(t, v, g))
    reference = module(x)
    assert calls == []
    with kernels.use_backend("triton"):
        assert_rel_close(module(x), reference)
    assert calls == [1]


@pytest.mark.triton
@pytest.mark.parametrize("gamma_kind", ["random", "zero"])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_gated_matches_reference(gamma_kind, layout):
    """x + gamma (eca(x) - x): forward and the gradients of x, the weight and gamma."""
    x = make_feature_map((2, 19, 5, 3), torch.float32, layout, seed=4)
    gamma = random_like(torch.empty(19), 9) if gamma_kind == "random" else torch.zeros(19)
    compare_with_float64(
        lambda t, w, g: kernels.eca(t, w, backend="triton", gamma=g), eca_file.eca_reference,
        [x, conv_weight(5, torch.float32), gamma],
    )


@pytest.mark.triton
def test_gated_zero_is_the_identity():
    x = make_feature_map((2, 7, 4, 5), torch.float32, "channels_last")
    assert torch.equal(kernels.eca(x, conv_weight(3, torch.float32), backend="triton", gamma=torch.zeros(7)), x)


def _eca_call(x, weight, gamma=None, backend=None):
    return kernels.eca(x, weight, backend, gamma=gamma)


@pytest.mark.triton
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # numpy, in the interpreter
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_nan_and_inf_where_the_reference_puts_them(layout):
    """One NaN in channel 0 makes channels 0..k//2 of its image non-finite, as in the reference
    (the former band-matrix kernel spread it over its whole 64-channel block)."""
    x = with_bad_values(make_feature_map((3, 70, 4, 5), torch.float32, layout))
    assert_backends_agree(_eca_call, [x, conv_weight(5, torch.float32)])
    y = kernels.eca(x, conv_weight(5, torch.float32), backend="triton")
    assert not torch.isfinite(y[0]).all(dim=(1, 2)).logical_not()[3:-3].any()  # the middle channels stay finite


@pytest.mark.triton
@pytest.mark.parametrize("shape", EMPTY_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_empty_maps_as_the_reference(shape):
    x = make_feature_map(shape, torch.float32, "contiguous")
    assert_backends_agree(_eca_call, [x, conv_weight(3, torch.float32), random_like(torch.empty(shape[1]), 3)])


@pytest.mark.triton
def test_mixed_dtypes_give_the_same_error():
    x = make_feature_map((1, 4, 3, 3), torch.float16, "contiguous")
    assert_same_error(_eca_call, [x, conv_weight(3, torch.float32)], ValueError, "weight has dtype float32 but x has float16")
    assert_same_error(_eca_call, [x.float(), conv_weight(3, torch.float32), torch.ones(3)], ValueError, "must be None or a tensor of shape")


def test_module_forward_gated():
    """ECALayer.forward_gated(x, gate) == x + gate (ECALayer(x) - x), gradients to the gate."""
    from plugattn.attention import ECALayer

    check_forward_gated(ECALayer(12), 12)
