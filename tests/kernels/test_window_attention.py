"""Fused Swin window attention on the packed qkv tensor (plugattn/kernels/window_attention_kernel/).

Mirrors the package: reference (against a loop-over-windows Swin written here from the paper /
official code, gradcheck in float64), kernels (Triton - the interpreter without a GPU, at the GPU's
own tile sizes - against the reference evaluated in float64 on the same rounded values: forward, ∂qkv
and ∂table, fp32/fp16/bf16, shifted/unshifted, padded maps, strided qkv, outputs poisoned with NaN),
launcher (the planner: key pieces, occupancy floors, deterministic bias gradient), op registration
(opcheck, FX leaf, torch.compile) and the public function (dispatch, argument errors).
"""
from __future__ import annotations

import importlib

import pytest
import torch
import torch.nn.functional as F

from plugattn import kernels
from plugattn.kernels import dispatch, launch_plan
from plugattn.testing import assert_rel_close

from .kernel_cases import assert_compiles_once

wa = importlib.import_module("plugattn.kernels.window_attention_kernel")
launcher = importlib.import_module("plugattn.kernels.window_attention_kernel.launcher")

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
DTYPES = (torch.float32, torch.float16, torch.bfloat16)

# (B, H, W, heads, head_dim, window, shift): interpreter-sized
CASES = [
    (1, 4, 4, 2, 16, 4, 0),  # batch 1, one window, unshifted
    (2, 5, 7, 2, 16, 3, 1),  # padding in H and W, shifted, 12 windows
    (1, 6, 5, 1, 8, 4, 2),  # head dim below the 16-wide tile, shift 2 of 4
]
GPU_CASES = [  # real Triton only: Swin-T stage shapes (batch 2) and the largest supported window/head dim
    (2, 56, 56, 3, 32, 7, 3),
    (2, 14, 14, 12, 32, 7, 0),
    (1, 7, 7, 24, 32, 7, 0),
    (2, 30, 27, 4, 64, 11, 5),
    (2, 20, 20, 2, 16, 5, 2),
    (2, 24, 36, 4, 32, 12, 6),  # 12x12 windows: 128 + 16 key slots, query blocks
    (1, 25, 13, 2, 64, 12, 0),
]


def case_id(case) -> str:
    b, h, w, n, d, m, s = case
    return f"b{b}_{h}x{w}_h{n}_d{d}_m{m}_s{s}"


def make_inputs(case, dtype=torch.float64, seed=0, device="cpu", layout="contiguous"):
    """qkv (B, H, W, 3C) as a Swin block's projection gives it (or strided) and a bias table."""
    b, h, w, heads, d, m, _ = case
    generator = torch.Generator().manual_seed(seed)
    qkv = torch.randn(b, h, w, 3 * heads * d, generator=generator, dtype=torch.float64) * 1.5
    table = torch.randn((2 * m - 1) ** 2, heads, generator=generator, dtype=torch.float64)
    qkv, table = qkv.to(device=device, dtype=dtype), table.to(device=device, dtype=dtype)
    if layout == "strided":  # every stride unusual: a view into a NaN-padded buffer, W and C permuted
        buffer = torch.full((b, h + 1, 3 * heads * d + 5, w), float("nan"), dtype=dtype, device=device)
        view = buffer[:, 1:, 2 : 2 + 3 * heads * d].permute(0, 1, 3, 2)
        view.copy_(qkv)
        qkv = view
    return qkv, table


# ----------------------------------------------------------------------------- reference
def straightforward_swin(qkv, table, m: int, s: int, scale: float) -> torch.Tensor:
    """Swin (S)W-MSA as the official code / timm do it, one window at a time: roll the map by −s,
    zero-pad to multiples of M, for each window softmax(q·kᵀ·scale + B + M)·v with B[i, j] =
    table[(Δrow + M − 1)(2M − 1) + Δcol + M − 1] and −100 between the 3×3 regions, roll back."""
    b, h, w, _ = qkv.shape
    heads = table.shape[1]
    q, k, v = qkv.unflatten(-1, (3, heads, -1)).unbind(3)  # each (B, H, W, heads, d)
    hp, wp = h + (-h) % m, w + (-w) % m
    rolled = [torch.roll(t, (-s, -s), (1, 2)) if s else t for t in (q, k, v)]
    qp, kp, vp = [F.pad(t, (0, 0, 0, 0, 0, wp - w, 0, hp - h)) for t in rolled]
    region = torch.zeros(hp, wp, dtype=torch.long)
    count = 0
    for rows in (slice(0, -m), slice(-m, -s), slice(-s, None)):
        for cols in (slice(0, -m), slice(-m, -s), slice(-s, None)):
            region[rows, cols] = count
            count += 1
    if s == 0:
        region.zero_()
    out = torch.zeros_like(qp)
    for top in range(0, hp, m):
        for left in range(0, wp, m):
            coords = [(top + r, left + c) for r in range(m) for c in range(m)]
            rows = torch.tensor([p[0] for p in coords])
            cols = torch.tensor([p[1] for p in coords])
            qw, kw, vw = (t[:, rows, cols].transpose(1, 2) for t in (qp, kp, vp))  # (B, heads, N, d)
            bias = torch.empty(heads, m * m, m * m, dtype=qkv.dtype)
            mask = torch.zeros(m * m, m * m, dtype=qkv.dtype)
            for i, (ri, ci) in enumerate(coords):
                for j, (rj, cj) in enumerate(coords):
                    bias[:, i, j] = table[(ri - rj + m - 1) * (2 * m - 1) + (ci - cj + m - 1)]
                    if region[ri, ci] != region[rj, cj]:
                        mask[i, j] = -100.0
            attn = torch.softmax(qw @ kw.transpose(-1, -2) * scale + bias + mask, dim=-1)
            out[:, rows, cols] = (attn @ vw).transpose(1, 2)
    out = out[:, :h, :w].flatten(-2)
    return torch.roll(out, (s, s), (1, 2)) if s else out


@pytest.mark.parametrize("case", CASES + [(2, 7, 7, 3, 4, 7, 3), (1, 2, 3, 1, 4, 4, 0)], ids=case_id)
def test_reference_matches_straightforward_swin(case):
    qkv, table = make_inputs(case)
    m, s = case[5], case[6]
    assert_rel_close(wa.window_attention_reference(qkv, table, m, s, 0.3), straightforward_swin(qkv, table, m, s, 0.3))


def test_reference_gradcheck_float64():
    qkv, table = [t.clone().requires_grad_(True) for t in make_inputs((1, 5, 4, 2, 3, 3, 1))]
    assert torch.autograd.gradcheck(lambda *a: wa.window_attention_reference(*a, 3, 1, 0.5), (qkv, table))


def test_mask_convention_is_minus_100():
    # a 2x2 padded map, window 2, shift 1: all four tokens lie in different regions
    mask = wa.shifted_window_mask(2, 2, 2, 1)
    assert wa.MASK_VALUE == -100.0
    assert mask.shape == (1, 4, 4)
    assert torch.equal(mask[0], (1 - torch.eye(4)) * -100.0)


def test_relative_position_index_covers_table():
    index = wa.relative_position_index(7)
    assert index.shape == (49, 49)
    assert index.min() == 0 and index.max() == 13 * 13 - 1
    assert torch.unique(index).numel() == 169
    assert torch.all(index.diagonal() == 84)  # zero offset sits in the middle of the table
    # a 3x3 window reads the centre of the window-7 table: offsets -2..2 around row 84
    small = wa.relative_position_index(3, table_window=7)
    assert torch.all(small.diagonal() == 84) and small.min() == 84 - 2 * 13 - 2 and small.max() == 84 + 2 * 13 + 2


def test_kernel_masks_match_the_reference_mask():
    # the launcher's four window kinds reproduce shifted_window_mask for every window of a map
    m, s, hp, wp = 4, 2, 12, 8
    full = wa.shifted_window_mask(hp, wp, m, s)  # (nW, N, N)
    kinds = launcher._kind_masks(m, s, torch.device("cpu"))
    n_win_h, n_win_w = hp // m, wp // m
    for window in range(n_win_h * n_win_w):
        kind = 2 * (window // n_win_w == n_win_h - 1) + (window % n_win_w == n_win_w - 1)
        assert torch.equal(kinds[kind], full[window])


# ----------------------------------------------------------------------------- kernels
def _compare_triton_with_float64(case, dtype, device, seed=0, layout="contiguous"):
    m, s = case[5], case[6]
    qkv, table = make_inputs(case, dtype, seed, device, layout)
    scale = case[4] ** -0.5
    ours = [t.detach().requires_grad_(True) for t in (qkv, table)]
    exact = [t.detach().double().requires_grad_(True) for t in (qkv, table)]
    y = wa.window_attention(*ours, m, s, scale, backend="triton")
    y_exact = wa.window_attention_reference(*exact, m, s, scale)
    assert y.dtype == dtype and y.shape == qkv.shape[:3] + (qkv.shape[3] // 3,)
    assert_rel_close(y, y_exact, dtype=dtype, what="output")
    grad = torch.randn(y.shape, generator=torch.Generator().manual_seed(seed + 7), dtype=torch.float64)
    grad = grad.to(dtype)
    y.backward(grad.to(y.device))
    y_exact.backward(grad.double().to(y.device))  # the reference gets the same rounded gradient
    for name, a, b in zip(("dqkv", "d_table"), ours, exact):
        assert a.grad.dtype == dtype and a.grad.shape == a.shape
        assert_rel_close(a.grad, b.grad, dtype=dtype, what=name)


@pytest.mark.triton
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_triton_matches_reference(case, dtype):
    _compare_triton_with_float64(case, dtype, DEVICE)


@pytest.mark.triton
def test_triton_strided_qkv():
    _compare_triton_with_float64((2, 5, 7, 2, 16, 3, 1), torch.float32, DEVICE, seed=2, layout="strided")


@pytest.mark.triton
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_window_12_key_tail_and_query_blocks(dtype):
    # Swin's largest window with the planner's own tiles: 144 tokens in 128 + 16 key slots, query
    # blocks, shifted and padded
    forward, backward = launch_plan("window_attention", (1, 13, 12, 16, 1, 12, 5), dtype)
    assert (forward.constexprs["KEYS_MAIN"], forward.constexprs["KEYS_TAIL"]) == (128, 16)
    assert forward.constexprs["BLOCK_M"] < 144 and backward.constexprs["BLOCK_M"] < 144
    _compare_triton_with_float64((1, 13, 12, 1, 16, 12, 5), dtype, DEVICE)


@pytest.mark.triton
@pytest.mark.skipif(not torch.cuda.is_available(), reason="real Triton needs a GPU")
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", GPU_CASES, ids=case_id)
def test_triton_matches_reference_on_gpu(case, dtype):
    _compare_triton_with_float64(case, dtype, "cuda")


def _check_forced_launch(case, dtype, seed, deterministic=False, **forced):
    """Forward and backward with forced tiles (NaN-poisoned outputs) against float64."""
    m, s = case[5], case[6]
    qkv, table = make_inputs(case, dtype, seed, DEVICE)
    scale = case[4] ** -0.5
    bias = wa.window_bias(table.float(), m)
    out = launcher.launch_forward(qkv, bias, m, s, scale, **{k: v for k, v in forced.items() if k == "block_m"})
    exact = [t.double().requires_grad_(True) for t in (qkv, table)]
    y_exact = wa.window_attention_reference(*exact, m, s, scale)
    assert_rel_close(out, y_exact, dtype=dtype, what="output")
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64).to(dtype)
    y_exact.backward(grad.double())
    bias_exact = wa.window_bias(exact[1], m)
    (dbias_exact,) = torch.autograd.grad(wa.window_attention_reference(exact[0].detach(), exact[1], m, s, scale),
                                         [exact[1]], grad.double())
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(deterministic)
    try:
        dqkv, dbias = launcher.launch_backward(grad.to(DEVICE), qkv, bias, m, s, scale, **forced)
    finally:
        torch.use_deterministic_algorithms(previous)
    assert_rel_close(dqkv, exact[0].grad, dtype=dtype, what="dqkv")
    dtable = torch.zeros_like(exact[1]).index_put_((wa.relative_position_index(m).flatten(),),
                                                   dbias.double().permute(1, 2, 0).flatten(0, 1), accumulate=True)
    assert bias_exact.shape == dbias.shape
    assert_rel_close(dtable, dbias_exact, dtype=dtype, what="dbias")
    return dqkv, dbias


@pytest.mark.triton
@pytest.mark.parametrize("deterministic", [False, True], ids=["atomic", "deterministic"])
@pytest.mark.parametrize("block_m,per_program", [(64, 5), (16, 3)], ids=["one_block", "query_blocks"])
def test_bias_gradient_paths(block_m, per_program, deterministic):
    # a 6x6 window (36 tokens: 32 + 16 key slots); 8 windows: 5 or 3 per program, the last program
    # partial; one query block (dB̃ summed in registers) or three (added block by block)
    _check_forced_launch((2, 7, 11, 1, 16, 6, 3), torch.float32, 5, deterministic,
                         block_m=block_m, per_program=per_program)


@pytest.mark.triton
def test_deterministic_mode_is_bitwise_reproducible():
    case = (1, 5, 5, 1, 16, 3, 1)
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        _, plan = launch_plan("window_attention", (64, 56, 56, 96, 3, 7, 3), torch.float32)
        assert plan.constexprs["PRIVATE_SLICES"] and plan.grid[0] > 1
        runs = []
        for _ in range(2):
            qkv, table = [t.requires_grad_(True) for t in make_inputs(case, torch.float32, 9, DEVICE)]
            out = wa.window_attention(qkv, table, 3, 1, backend="triton")
            out.backward(torch.ones_like(out))
            runs.append((out.detach(), qkv.grad, table.grad))
    finally:
        torch.use_deterministic_algorithms(previous)
    for a, b in zip(*runs):
        assert torch.equal(a, b)
    _, plan = launch_plan("window_attention", (64, 56, 56, 96, 3, 7, 3), torch.bfloat16)
    assert plan.constexprs["BLOCK_M"] == plan.constexprs["QUERY_SLOTS"]
    assert not plan.constexprs["PRIVATE_SLICES"]  # one query block: relaxed atomics outside deterministic mode
    _, plan = launch_plan("window_attention", (64, 96, 96, 128, 4, 12, 6), torch.bfloat16)
    assert plan.constexprs["PRIVATE_SLICES"]  # query blocks: never atomics


# ----------------------------------------------------------------------------- launcher / planner
SWIN_T_STAGES = [(56, 96, 3, 3), (28, 192, 6, 3), (14, 384, 12, 3), (7, 768, 24, 0)]  # (side, C, heads, shift)


@pytest.mark.parametrize("device", ["h100", "h200"])
@pytest.mark.parametrize("batch", [1, 64])
def test_occupancy_floor_at_swin_t_stages(batch, device):
    # forward: at least min(2 x SMs, every (window, head, 16-query block)); backward: at least
    # min(2 x SMs, every (window, head)) - a backward program needs all of a window's queries
    spec = kernels.DEVICES[device]
    for side, channels, heads, shift in SWIN_T_STAGES:
        shape = (batch, side, side, channels, heads, 7, shift)
        windows = batch * (-(-side // 7)) ** 2
        for dtype in DTYPES:
            fwd, bwd = launch_plan("window_attention", shape, dtype, device=device)
            assert (fwd.phase, bwd.phase) == ("forward", "backward")
            assert launch_plan("window_attention", (batch, side, side, channels), dtype, device=device) == [fwd, bwd]
            assert fwd.programs >= min(2 * spec.sm_count, windows * heads * 4), (shape, dtype, fwd)
            assert bwd.programs >= min(2 * spec.sm_count, windows * heads), (shape, dtype, bwd)
            assert fwd.bytes_moved >= 4 * batch * side * side * channels * torch.empty((), dtype=dtype).element_size()


def test_key_slots_are_multiples_of_16_where_two_pieces_allow():
    for window in range(1, 13):
        main, tail = wa.key_pieces(window * window)
        least = max(16, -(-window * window // 16) * 16)
        assert main + tail >= window * window and main & (main - 1) == 0 and (tail == 0 or tail >= 16)
        assert main + tail == least or window == 10, window  # 100 tokens: 112 is no sum of two powers of two
    assert wa.key_pieces(144) == (128, 16)


def test_plan_rejects_a_bad_shape():
    with pytest.raises(ValueError, match=r"shape \(B, H, W, C, heads, window, shift\)"):
        launch_plan("window_attention", (1, 56, 56, 96, 3))
    with pytest.raises(ValueError, match="needs C divisible by 32"):
        launch_plan("window_attention", (1, 56, 56, 48))


def test_interpreter_runs_the_gpu_tiles():
    # no shrinking under the interpreter: the planner sees an H100 for CPU tensors; only bf16 tl.dot
    # is upcast there (exactly), because the interpreter's bf16 tl.dot is wrong (triton 3.6-3.8)
    assert launcher.device_spec(torch.zeros(1)) == kernels.DEVICES["h100"]
    for plan in launch_plan("window_attention", (1, 13, 12, 16, 1, 12, 5), torch.bfloat16):
        assert plan.constexprs["UPCAST"] == dispatch.interpreter_enabled()


# ----------------------------------------------------------------------------- op registration
@pytest.mark.triton
def test_opcheck():
    qkv, table = make_inputs((1, 3, 3, 1, 16, 3, 1), torch.float32, 4, DEVICE)
    bias = wa.window_bias(table, 3).detach().requires_grad_(True)
    torch.library.opcheck(wa.window_attention_op, (qkv.requires_grad_(True), bias, 3, 1, 0.25))


class _UsesWindowAttention(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.qkv = torch.nn.Linear(8, 24)
        self.table = torch.nn.Parameter(torch.randn(9, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return kernels.window_attention(self.qkv(x), self.table, 2, 1, backend="triton")


@pytest.mark.triton
def test_fx_symbolic_trace():
    module = _UsesWindowAttention()
    graph_module = torch.fx.symbolic_trace(module)
    assert [n.target for n in graph_module.graph.nodes if n.op == "call_function"] == [kernels.window_attention]
    x = torch.randn(1, 3, 5, 8)
    assert_rel_close(graph_module(x), module(x))


@pytest.mark.triton
def test_torch_compile_matches_eager():
    module = _UsesWindowAttention()
    compiled = torch.compile(module, fullgraph=True)
    x = torch.randn(2, 3, 5, 8)
    params = list(module.parameters())
    eager = module(x)
    eager_grads = torch.autograd.grad(eager, params, torch.ones_like(eager) * 0.7)
    out = compiled(x)
    compiled_grads = torch.autograd.grad(out, params, torch.ones_like(out) * 0.7)
    assert_rel_close(out, eager)
    for a, b in zip(compiled_grads, eager_grads):
        assert_rel_close(a, b, what="gradient")


@pytest.mark.triton
def test_dynamic_shapes_compile_once():
    """One dynamic-shape graph for every batch and map size (padded, shifted windows; sizes >= 2); the
    GPU path's trace is tests/kernels/test_dynamic_gpu_path.py."""
    assert_compiles_once(_UsesWindowAttention(), [(2, 3, 5, 8), (3, 6, 4, 8), (4, 5, 7, 8)])


# ----------------------------------------------------------------------------- public function
@pytest.mark.triton
def test_dispatch_rules():
    qkv, table = make_inputs((1, 3, 3, 1, 4, 3, 1), torch.float32)
    expected = wa.window_attention_reference(qkv, table, 3, 1)
    assert torch.equal(wa.window_attention(qkv, table, 3, 1, backend="torch"), expected)
    if not torch.cuda.is_available():
        assert torch.equal(wa.window_attention(qkv, table, 3, 1, backend="auto"), expected)
    big = make_inputs((1, 13, 13, 1, 4, 13, 0), torch.float32)
    wide = make_inputs((1, 3, 3, 1, 80, 3, 0), torch.float32)
    with dispatch.use_backend("triton"):
        with pytest.raises(RuntimeError, match=f"window_size 13 > {wa.MAX_TRITON_WINDOW}"):
            wa.window_attention(*big, 13, 0)
        with pytest.raises(RuntimeError, match="head_dim 80 > 64"):
            wa.window_attention(*wide, 3, 0)
    # auto falls back to the reference where the kernel does not reach
    assert wa.window_attention(*big, 13, 0, backend="auto").shape == (1, 13, 13, 4)


def test_smaller_window_uses_the_table_centre():
    qkv, table = make_inputs((1, 3, 3, 2, 4, 7, 0))
    centre = table.view(13, 13, 2)[4:9, 4:9].reshape(25, 2)  # offsets -2..2 of a window-3 table
    assert_rel_close(wa.window_attention(qkv, table, 3, 0, backend="torch"),
                     wa.window_attention_reference(qkv, centre, 3, 0))


@pytest.mark.parametrize(
    "change,match",
    [
        (dict(window_size=0), "window_size must be an integer >= 1, got 0"),
        (dict(shift_size=3), r"shift_size must be an integer in \[0, window_size=3\), got 3"),
        (dict(shift_size=-1), "shift_size must be an integer in"),
        (dict(table=torch.zeros(10, 2)), r"rel_pos_bias must be a \(\(2T-1\)\*\*2, heads\) table"),
        (dict(table=torch.zeros(9, 2)), r"T >= window_size=3"),
        (dict(table=torch.zeros(25, 5)), "qkv's last axis must be 3 \\* heads \\* head_dim with heads=5"),
        (dict(qkv=torch.zeros(3, 3, 24)), r"qkv must have shape \(B, H, W, 3 \* C\)"),
        (dict(qkv=torch.zeros(1, 3, 3, 24, dtype=torch.long)), "qkv must be a floating-point tensor"),
    ],
)
def test_bad_arguments(change, match):
    args = dict(qkv=torch.zeros(1, 3, 3, 24), table=torch.zeros(25, 2), window_size=3, shift_size=1)
    args.update(change)
    with pytest.raises(ValueError, match=match):
        wa.window_attention(args["qkv"], args["table"], args["window_size"], args["shift_size"])
