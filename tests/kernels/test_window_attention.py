"""Fused Swin window attention (plugattn/kernels/window_attention.py).

* the PyTorch reference against a straightforward, loop-over-windows Swin implementation written
  here from the paper / official code (roll, pad, per-window softmax(q·kᵀ·scale + B + M)·v);
* gradcheck in float64 on the reference (q, k, v and the bias table);
* the Triton kernels (interpreter without a GPU, real Triton with one) against the reference
  evaluated in float64: forward and every gradient (dq, dk, dv, d table), fp32/fp16/bf16, shifted and
  unshifted, padded maps, batch 1, several heads; outputs poisoned with NaN before launch;
* torch.library.opcheck of the custom op, dispatch rules, argument errors.
"""
from __future__ import annotations

import importlib

import pytest
import torch
import torch.nn.functional as F

from plugattn.kernels import dispatch
from plugattn.testing import assert_rel_close

# plugattn.kernels.window_attention is the function; the file holding it is reached through importlib
wa = importlib.import_module("plugattn.kernels.window_attention")

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
    (2, 24, 36, 4, 32, 12, 6),  # 12x12 windows: query blocks (Swin-B/L at 384 px)
    (1, 25, 13, 2, 64, 12, 0),
]


def case_id(case) -> str:
    b, h, w, n, d, m, s = case
    return f"b{b}_{h}x{w}_h{n}_d{d}_m{m}_s{s}"


def make_inputs(case, dtype=torch.float64, seed=0, device="cpu"):
    """q, k, v as strided views of one qkv tensor (as a Swin block has them) and a bias table."""
    b, h, w, heads, d, m, _ = case
    generator = torch.Generator().manual_seed(seed)
    qkv = torch.randn(b, h, w, 3, heads, d, generator=generator, dtype=torch.float64) * 1.5
    table = torch.randn((2 * m - 1) ** 2, heads, generator=generator, dtype=torch.float64)
    qkv, table = qkv.to(device=device, dtype=dtype), table.to(device=device, dtype=dtype)
    return qkv[..., 0, :, :], qkv[..., 1, :, :], qkv[..., 2, :, :], table


def straightforward_swin(q, k, v, table, m: int, s: int, scale: float) -> torch.Tensor:
    """Swin (S)W-MSA as the official code / timm do it, one window at a time: roll the map by −s,
    zero-pad to multiples of M, for each window softmax(q·kᵀ·scale + B + M)·v with B[i, j] =
    table[(Δrow + M − 1)(2M − 1) + Δcol + M − 1] and −100 between the 3×3 regions, roll back."""
    b, h, w, heads, d = q.shape
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
            bias = torch.empty(heads, m * m, m * m, dtype=q.dtype, device=q.device)
            mask = torch.zeros(m * m, m * m, dtype=q.dtype, device=q.device)
            for i, (ri, ci) in enumerate(coords):
                for j, (rj, cj) in enumerate(coords):
                    bias[:, i, j] = table[(ri - rj + m - 1) * (2 * m - 1) + (ci - cj + m - 1)]
                    if region[ri, ci] != region[rj, cj]:
                        mask[i, j] = -100.0
            attn = torch.softmax(qw @ kw.transpose(-1, -2) * scale + bias + mask, dim=-1)
            out[:, rows, cols] = (attn @ vw).transpose(1, 2)
    out = out[:, :h, :w]
    return torch.roll(out, (s, s), (1, 2)) if s else out


@pytest.mark.parametrize("case", CASES + [(2, 7, 7, 3, 4, 7, 3), (1, 2, 3, 1, 4, 4, 0)], ids=case_id)
def test_reference_matches_straightforward_swin(case):
    q, k, v, table = make_inputs(case)
    m, s = case[5], case[6]
    expected = straightforward_swin(q, k, v, table, m, s, 0.3)
    assert_rel_close(wa.window_attention_reference(q, k, v, table, m, s, 0.3), expected)


def test_reference_gradcheck_float64():
    q, k, v, table = [t.clone().requires_grad_(True) for t in make_inputs((1, 5, 4, 2, 3, 3, 1))]
    assert torch.autograd.gradcheck(lambda *a: wa.window_attention_reference(*a, 3, 1, 0.5), (q, k, v, table))


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


def _compare_triton_with_float64(case, dtype, device, seed=0, **launch):
    m, s = case[5], case[6]
    q, k, v, table = make_inputs(case, dtype, seed, device)
    scale = case[4] ** -0.5
    ours = [t.detach().requires_grad_(True) for t in (q, k, v, table)]
    exact = [t.detach().double().requires_grad_(True) for t in (q, k, v, table)]
    y = wa.window_attention(*ours, m, s, scale, backend="triton")
    y_exact = wa.window_attention_reference(*exact, m, s, scale)
    assert y.dtype == dtype and y.shape == q.shape
    assert_rel_close(y, y_exact, what="output")
    grad = torch.randn(y.shape, generator=torch.Generator().manual_seed(seed + 7), dtype=torch.float64).to(y.device)
    y.backward(grad.to(dtype))
    y_exact.backward(grad)
    for name, a, b in zip(("dq", "dk", "dv", "d_table"), ours, exact):
        assert a.grad.dtype == dtype
        assert_rel_close(a.grad, b.grad, dtype=dtype, what=name)


@pytest.mark.triton
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_triton_matches_reference(case, dtype):
    _compare_triton_with_float64(case, dtype, DEVICE)


@pytest.mark.triton
@pytest.mark.skipif(not torch.cuda.is_available(), reason="real Triton needs a GPU")
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", GPU_CASES, ids=case_id)
def test_triton_matches_reference_on_gpu(case, dtype):
    _compare_triton_with_float64(case, dtype, "cuda")


def _check_poisoned_launch(case, dtype, seed, **launch):
    """Launch forward and backward into NaN-filled outputs and compare every one with float64."""
    m, s = case[5], case[6]
    q, k, v, table = make_inputs(case, dtype, seed, DEVICE)
    scale = case[4] ** -0.5
    nan = float("nan")
    block_m = launch.pop("block_m", None)
    out = wa._launch_forward(q, k, v, table, m, s, scale, out=torch.full(q.shape, nan, dtype=dtype, device=DEVICE),
                             block_m=block_m)
    exact = [t.double().requires_grad_(True) for t in (q, k, v, table)]
    y_exact = wa.window_attention_reference(*exact, m, s, scale)
    assert_rel_close(out, y_exact, dtype=dtype, what="output")
    grad_out = torch.randn(q.shape, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    y_exact.backward(grad_out)
    poisoned = [torch.full(t.shape, nan, dtype=dtype, device=DEVICE) for t in (q, k, v, table)]
    grads = wa._launch_backward(grad_out.to(dtype=dtype, device=DEVICE), q, k, v, table, m, s, scale, *poisoned,
                                block_m=block_m, **launch)
    for name, ours, ref in zip(("dq", "dk", "dv", "d_table"), grads, exact):
        assert_rel_close(ours, ref.grad, dtype=dtype, what=name)


@pytest.mark.triton
@pytest.mark.parametrize("windows_per_program", [1, 5])
def test_poisoned_outputs_are_fully_written(windows_per_program):
    # 12 windows: 5 per program leaves a partial last program
    _check_poisoned_launch((2, 5, 7, 2, 16, 3, 1), torch.float32, 3, windows_per_program=windows_per_program)


@pytest.mark.triton
@pytest.mark.parametrize("block_m,windows_per_program", [(16, 1), (16, 3), (32, 2)])
def test_query_blocks(block_m, windows_per_program):
    # a 6x6 window (36 tokens, 64 slots) in query blocks, as a 12x12 window runs: 16 -> three blocks, the
    # last one mostly padding; 8 windows over 3 per program leave a partial last program
    _check_poisoned_launch((2, 11, 13, 2, 16, 6, 3), torch.float32, 5, block_m=block_m,
                           windows_per_program=windows_per_program)


@pytest.mark.triton
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_window_12_uses_query_blocks(dtype):
    # Swin's largest window with the launchers' own block sizes: 144 tokens in 256 slots, shifted and padded
    assert all(wa._query_block(256, dtype, backward) < 256 for backward in (False, True))
    assert wa.triton_unsupported_reason(12, 64) is None
    _compare_triton_with_float64((1, 13, 12, 1, 16, 12, 5), dtype, DEVICE)


@pytest.mark.triton
def test_opcheck():
    q, k, v, table = [t.detach().requires_grad_(True) for t in make_inputs((1, 3, 3, 1, 16, 3, 1), torch.float32, 4, DEVICE)]
    torch.library.opcheck(torch.ops.plugattn.window_attention.default, (q, k, v, table, 3, 1, 0.25))


@pytest.mark.triton
def test_dispatch_rules():
    q, k, v, table = make_inputs((1, 3, 3, 1, 4, 3, 1), torch.float32)
    expected = wa.window_attention_reference(q, k, v, table, 3, 1)
    assert torch.equal(wa.window_attention(q, k, v, table, 3, 1, backend="torch"), expected)
    if not torch.cuda.is_available():
        assert torch.equal(wa.window_attention(q, k, v, table, 3, 1, backend="auto"), expected)
    with dispatch.use_backend("triton"):
        big = make_inputs((1, 13, 13, 1, 4, 13, 0), torch.float32)
        with pytest.raises(RuntimeError, match=f"window_size 13 > {wa.MAX_TRITON_WINDOW}"):
            wa.window_attention(*big, 13, 0)
        wide = make_inputs((1, 3, 3, 1, 80, 3, 0), torch.float32)
        with pytest.raises(RuntimeError, match="head_dim 80 > 64"):
            wa.window_attention(*wide, 3, 0)
    # auto falls back to the reference where the kernel does not reach
    assert wa.window_attention(*big, 13, 0, backend="auto").shape == big[0].shape


@pytest.mark.parametrize(
    "change,match",
    [
        (dict(window_size=0), "window_size must be an integer >= 1, got 0"),
        (dict(shift_size=3), r"shift_size must be an integer in \[0, window_size=3\), got 3"),
        (dict(shift_size=-1), "shift_size must be an integer in"),
        (dict(table=torch.zeros(9, 2)), r"rel_pos_bias must be the .* table"),
        (dict(k=torch.zeros(1, 3, 4, 2, 4)), "k must have the shape of q"),
        (dict(v=torch.zeros(1, 3, 3, 2, 4, dtype=torch.float64)), "v must match q's dtype"),
        (dict(q=torch.zeros(3, 3, 2, 4)), r"q must have shape \(B, H, W, heads, head_dim\)"),
    ],
)
def test_bad_arguments(change, match):
    args = dict(q=torch.zeros(1, 3, 3, 2, 4), k=torch.zeros(1, 3, 3, 2, 4), v=torch.zeros(1, 3, 3, 2, 4),
                table=torch.zeros(25, 2), window_size=3, shift_size=1)
    if "q" in change:
        args["k"] = args["v"] = change["q"]
    args.update(change)
    with pytest.raises(ValueError, match=match):
        wa.window_attention(args["q"], args["k"], args["v"], args["table"], args["window_size"], args["shift_size"])


def test_benchmark_script_runs_both_stage_sets():
    from bench.window import SWIN_B_384_STAGES, bench_op, main, run_benchmarks

    rows = main(["--device", "cpu", "--quick", "--impls", "eager", "sdpa", "--dtypes", "fp32", "--modes", "fwd"])
    assert [row["impl"] for row in rows] == ["eager", "sdpa"] * 2
    assert all(row["ms"] > 0 and " w7 " in row["shape"] for row in rows)
    # the window-12 stage shapes (Swin-B at 384 px) are well formed: the smallest one runs
    name, side, channels, heads, window, shift = SWIN_B_384_STAGES[3]
    assert (side, channels // heads, window, shift) == (12, 32, 12, 0)
    assert bench_op("sdpa", SWIN_B_384_STAGES[3], 1, "fp32", "fwd+bwd", torch.device("cpu"), 0, 1) > 0
    with pytest.raises(ValueError, match=r"stage_set must be one of \['swin_b_384', 'swin_t'\], got 'swin_s'"):
        run_benchmarks("cpu", stage_set="swin_s")
