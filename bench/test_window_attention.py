"""pytest-benchmark (CPU) of the PyTorch window-attention paths against a naive per-window loop.

Run: ``python -m pytest bench/test_window_attention.py --benchmark-only``. Each benchmark first
checks its implementation against the naive one, so a fast wrong path cannot pass.
"""
import pytest
import torch

from plugattn.benchmark.window import make_impl
from plugattn.testing import assert_rel_close

SHAPE = (2, 14, 14, 2, 32)  # (B, H, W, heads, head_dim): a stage-2-like map, window 7
WINDOW = 7


def naive_window_attention(qkv, table, m, s, scale=None):
    """One window at a time in Python: roll, then for each (padded) window gather its tokens,
    add the relative bias and the -100 cross-region mask, softmax, scatter back, roll back."""
    from plugattn.kernels.window_attention_kernel import relative_position_index

    q, k, v = qkv.unflatten(-1, (3, table.shape[1], -1)).unbind(3)  # each (B, H, W, heads, d)
    b, h, w, heads, d = q.shape
    scale = d ** -0.5 if scale is None else scale
    hp, wp = h + (-h) % m, w + (-w) % m
    q, k, v = [torch.roll(t, (-s, -s), (1, 2)) if s else t for t in (q, k, v)]
    bias = table[relative_position_index(m)].permute(2, 0, 1)  # (heads, N, N)
    region_rows = torch.tensor([0 if r < hp - m else (1 if r < hp - s else 2) for r in range(hp)]) if s else torch.zeros(hp)
    region_cols = torch.tensor([0 if c < wp - m else (1 if c < wp - s else 2) for c in range(wp)]) if s else torch.zeros(wp)
    out = torch.zeros_like(q)
    for top in range(0, hp, m):
        for left in range(0, wp, m):
            rows = torch.arange(top, top + m).repeat_interleave(m)
            cols = torch.arange(left, left + m).repeat(m)
            real = (rows < h) & (cols < w)
            tokens = [torch.zeros(b, m * m, heads, d, dtype=q.dtype) for _ in range(3)]
            for t, src in zip(tokens, (q, k, v)):
                t[:, real] = src[:, rows[real], cols[real]]
            qw, kw, vw = (t.transpose(1, 2) for t in tokens)  # (B, heads, N, d)
            region = region_rows[rows] * 3 + region_cols[cols]
            mask = (region[:, None] != region[None, :]).to(q.dtype) * -100.0
            attn = torch.softmax(qw @ kw.transpose(-1, -2) * scale + bias + mask, dim=-1)
            out[:, rows[real], cols[real]] = (attn @ vw).transpose(1, 2)[:, real]
    out = torch.roll(out, (s, s), (1, 2)) if s else out
    return out.flatten(-2)  # (B, H, W, C)


def _inputs(seed=0):
    generator = torch.Generator().manual_seed(seed)
    b, h, w, heads, d = SHAPE
    qkv = torch.randn(b, h, w, 3 * heads * d, generator=generator)
    table = torch.randn((2 * WINDOW - 1) ** 2, heads, generator=generator)
    return qkv, table


@pytest.mark.parametrize("shift", [0, 3])
@pytest.mark.parametrize("impl", ["naive", "eager", "sdpa"])
def test_forward(benchmark, impl, shift):
    fn = naive_window_attention if impl == "naive" else make_impl(impl)
    qkv, table = _inputs()
    expected = naive_window_attention(qkv.double(), table.double(), WINDOW, shift)
    out = benchmark(fn, qkv, table, WINDOW, shift)
    assert_rel_close(out, expected, dtype=torch.float32)


@pytest.mark.parametrize("impl", ["naive", "eager", "sdpa"])
def test_forward_backward(benchmark, impl):
    fn = naive_window_attention if impl == "naive" else make_impl(impl)
    qkv, table = [t.requires_grad_(True) for t in _inputs(1)]
    grad = torch.randn(SHAPE[:3] + (SHAPE[3] * SHAPE[4],))

    def step():
        for t in (qkv, table):
            t.grad = None
        fn(qkv, table, WINDOW, 3).backward(grad)
        return table.grad

    benchmark(step)
    exact = [t.detach().double().requires_grad_(True) for t in (qkv, table)]
    naive_window_attention(*exact, WINDOW, 3).backward(grad.double())
    assert_rel_close(table.grad, exact[1].grad, dtype=torch.float32, what="d table")
    assert_rel_close(qkv.grad, exact[0].grad, dtype=torch.float32, what="dqkv")
