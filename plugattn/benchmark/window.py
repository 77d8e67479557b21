"""Benchmark of Swin window attention: the fused Triton op against the PyTorch ways of computing it.

Implementations (all compute softmax(q·kᵀ·scale + B + M)·v on every window, with the cyclic shift):

* ``eager``   - (a) the eager reference :func:`plugattn.kernels.window_attention_reference`:
  explicit roll / pad / partition, matmul, add bias and mask, softmax, matmul, reverse;
* ``sdpa``    - (b) the same partition, with bias + mask folded into one additive mask and
  ``F.scaled_dot_product_attention`` on the memory-efficient backend;
* ``compile`` - (c) ``torch.compile`` of (a);
* ``triton``  - the fused kernel (CUDA only).

Shapes: the four Swin-T stages at batch 64 (56×56×96 / 3 heads, 28×28×192 / 6, 14×14×384 / 12,
7×7×768 / 24; window 7; shift 3 in stages 1-3, none in stage 4 as in Swin-T), or on request the
Swin-B stages at 384 px (96×96×128 / 4 .. 12×12×1024 / 32, window 12, shift 6), bf16 and fp32
(fp16 on request), forward and forward+backward. :func:`bench_model_step` times a whole Swin-T
training step.

Two entry points: :func:`run_benchmarks` (one row per implementation, what ``python -m
bench.window`` prints) and :func:`iter_benchmarks` (the rows of :mod:`.results`, eager vs
``torch.compile`` vs plugattn, what ``plugattn bench --op window`` prints). For the latter a shape
is B×H×W×C with Swin's head width 32 (heads = C / 32) and shift 3 when the map is larger than one
window; byte floors (T = B·H·W·C·element size): forward 4T (read q, k, v; write the output),
backward alone 7T (read q, k, v and ∂out; write ∂q, ∂k, ∂v); the bias table is negligible.
"""
from __future__ import annotations

from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from einops import rearrange

from ..kernels.dispatch import resolve_backend, use_backend
from ..kernels.window_attention_kernel import (
    relative_position_index,
    shifted_window_mask,
    triton_unsupported_reason,
    window_attention,
    window_attention_reference,
)
from .cases import check_drawn_from
from .results import Row, make_row
from .timing import PASSES, copy_gbps, median_ms, timed_pass, wall_median_ms

Stage = Tuple[str, int, int, int, int, int]  # (name, map side, channels, heads, window, shift)
SWIN_T_STAGES: Tuple[Stage, ...] = (  # Swin-T at 224 (Liu et al. 2021, Table 7)
    ("stage1", 56, 96, 3, 7, 3),
    ("stage2", 28, 192, 6, 7, 3),
    ("stage3", 14, 384, 12, 7, 3),
    ("stage4", 7, 768, 24, 7, 0),
)
SWIN_B_384_STAGES: Tuple[Stage, ...] = (  # Swin-B at 384: 12x12 windows, the kernel's query-block path
    ("stage1", 96, 128, 4, 12, 6),
    ("stage2", 48, 256, 8, 12, 6),
    ("stage3", 24, 512, 16, 12, 6),
    ("stage4", 12, 1024, 32, 12, 0),
)
QUICK_STAGES: Tuple[Stage, ...] = (
    ("tiny1", 14, 64, 2, 7, 3),
    ("tiny2", 7, 128, 4, 7, 0),
)
STAGE_SETS: Dict[str, Tuple[Stage, ...]] = {"swin_t": SWIN_T_STAGES, "swin_b_384": SWIN_B_384_STAGES}
WINDOW = 7  # ``plugattn bench --op window`` shapes use Swin-T's window
HEAD_DIM = 32  # Swin's head width: heads = C / 32
IMPLS = ("eager", "sdpa", "compile", "triton")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}

# For ``plugattn bench``: shapes B×H×W×C, as the Swin-T stages above.
OPS = ("window",)
SHAPE_LAYOUT = "BxHxWxC"
FULL_SHAPES: List[Tuple[int, int, int, int]] = [(64, side, side, c) for _, side, c, _, _, _ in SWIN_T_STAGES]
QUICK_SHAPES: List[Tuple[int, int, int, int]] = [(1, side, side, c) for _, side, c, _, _, _ in QUICK_STAGES]
FORWARD_FLOOR = 4  # in units of T
BACKWARD_FLOOR = 7


def sdpa_window_attention(
    qkv: torch.Tensor, table: torch.Tensor, window_size: int, shift_size: int, scale: Optional[float] = None,
) -> torch.Tensor:
    """(b): partition/shift in PyTorch, bias + shift mask as one additive mask, SDPA (memory-efficient).

    Example:
        >>> qkv = torch.randn(1, 7, 7, 3 * 16)
        >>> sdpa_window_attention(qkv, torch.zeros(169, 2), 7, 3).shape
        torch.Size([1, 7, 7, 16])
    """
    b, h, w, _ = qkv.shape
    heads = table.shape[1]
    q, k, v = qkv.unflatten(-1, (3, heads, -1)).unbind(3)  # each (B, H, W, heads, d)
    m = window_size
    pad_h, pad_w = (-h) % m, (-w) % m

    def to_windows(t: torch.Tensor) -> torch.Tensor:
        if shift_size:
            t = torch.roll(t, shifts=(-shift_size, -shift_size), dims=(1, 2))
        t = F.pad(t, (0, 0, 0, 0, 0, pad_w, 0, pad_h))
        return rearrange(t, "b (nh m1) (nw m2) n d -> b (nh nw) n (m1 m2) d", m1=m, m2=m)

    qw, kw, vw = to_windows(q), to_windows(k), to_windows(v)  # (B, nW, heads, N, D)
    n_windows = qw.shape[1]
    bias = rearrange(table[relative_position_index(m, q.device)], "n1 n2 h -> h n1 n2")  # (heads, N, N)
    mask = bias[None].expand(n_windows, -1, -1, -1)  # (nW, heads, N, N)
    if shift_size:
        mask = mask + shifted_window_mask(h + pad_h, w + pad_w, m, shift_size, q.device)[:, None]
    mask = mask.to(q.dtype)[None].expand(b, -1, -1, -1, -1)
    out = F.scaled_dot_product_attention(
        qw.flatten(0, 1), kw.flatten(0, 1), vw.flatten(0, 1), attn_mask=mask.flatten(0, 1), scale=scale
    )
    out = rearrange(out.unflatten(0, (b, n_windows)), "b (nh nw) n (m1 m2) d -> b (nh m1) (nw m2) n d",
                    nh=(h + pad_h) // m, m1=m, m2=m)[:, :h, :w]
    if shift_size:
        out = torch.roll(out, shifts=(shift_size, shift_size), dims=(1, 2))
    return out.flatten(-2)  # (B, H, W, C)


def _sdpa_memory_efficient(*args) -> torch.Tensor:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backends = [SDPBackend.EFFICIENT_ATTENTION] if args[0].is_cuda else [SDPBackend.MATH]
    with sdpa_kernel(backends):
        return sdpa_window_attention(*args)


def _triton(*args) -> torch.Tensor:
    return window_attention(*args, backend="triton")


_COMPILED: Dict[str, Callable] = {}


def make_impl(name: str) -> Callable[..., torch.Tensor]:
    """The callable ``(qkv, table, window, shift) -> out`` named ``name`` (one of :data:`IMPLS`).

    Example:
        >>> make_impl("eager") is window_attention_reference
        True
    """
    if name == "eager":
        return window_attention_reference
    if name == "sdpa":
        return _sdpa_memory_efficient
    if name == "compile":
        if "compile" not in _COMPILED:
            _COMPILED["compile"] = torch.compile(window_attention_reference, dynamic=False)
        return _COMPILED["compile"]
    if name == "triton":
        return _triton
    raise ValueError(f"impl must be one of {IMPLS}, got {name!r}")


def _inputs(batch: int, height: int, width: int, channels: int, heads: int, dtype: torch.dtype,
            device: torch.device, grad: bool, window: int = WINDOW) -> Tuple[torch.Tensor, torch.Tensor]:
    """qkv (B, H, W, 3C) as a Swin block's projection gives it, and the bias table."""
    qkv = torch.randn(batch, height, width, 3 * channels, device=device, dtype=dtype, requires_grad=grad)
    table = (0.02 * torch.randn((2 * window - 1) ** 2, heads, device=device, dtype=dtype)).requires_grad_(grad)
    return qkv, table


def bench_op(impl: str, stage: Stage, batch: int, dtype_name: str, mode: str,
             device: torch.device, warmup: int, reps: int) -> float:
    """Milliseconds of one implementation on one stage shape, ``mode`` 'fwd' or 'fwd+bwd'."""
    _, side, channels, heads, window, shift = stage
    fn = make_impl(impl)
    qkv, table = _inputs(batch, side, side, channels, heads, DTYPES[dtype_name], device, grad=mode == "fwd+bwd",
                         window=window)
    if mode == "fwd":
        def step():
            with torch.no_grad():
                return fn(qkv, table, window, shift)
    else:
        grad_out = torch.randn(qkv.shape[:3] + (channels,), device=device, dtype=qkv.dtype)

        def step():
            qkv.grad = table.grad = None
            fn(qkv, table, window, shift).backward(grad_out)
    return wall_median_ms(step, device, warmup, reps)


def bench_model_step(backend: str, batch: int, size: int, dtype_name: str, device: torch.device,
                     warmup: int, reps: int) -> float:
    """Milliseconds of one Swin-T training step (forward, cross-entropy, backward, SGD) on ``backend``."""
    from ..backbones.vit.swin import swin_tiny

    torch.manual_seed(0)
    model = swin_tiny().to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    images = torch.randn(batch, 3, size, size, device=device)
    labels = torch.randint(0, 1000, (batch,), device=device)
    use_autocast = DTYPES[dtype_name] != torch.float32

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=DTYPES[dtype_name], enabled=use_autocast):
            loss = F.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()

    with use_backend(backend):
        return wall_median_ms(step, device, warmup, reps)


def run_benchmarks(
    device: str = "cuda",
    quick: bool = False,
    impls: Optional[Sequence[str]] = None,
    dtypes: Sequence[str] = ("bf16", "fp32"),
    modes: Sequence[str] = ("fwd", "fwd+bwd"),
    batch: Optional[int] = None,
    include_model: bool = False,
    warmup: Optional[int] = None,
    reps: Optional[int] = None,
    stage_set: str = "swin_t",
) -> List[dict]:
    """Run the op (and optionally whole-model) benchmarks; one dict per measurement.

    ``stage_set`` picks the op shapes: ``"swin_t"`` (the issue's Swin-T stages, window 7) or
    ``"swin_b_384"`` (Swin-B at 384 px, window 12); ``quick`` replaces either with tiny shapes.

    Rows: ``{"kind": "op", "stage", "shape", "dtype", "mode", "impl", "ms", "speedup_vs_eager"}`` and
    ``{"kind": "model", "dtype", "backend", "batch", "size", "ms"}``. On CPU the Triton kernel is
    skipped (it needs CUDA; the interpreter is for tests, not timing).

    Example:
        >>> rows = run_benchmarks("cpu", quick=True, impls=["eager"], dtypes=["fp32"], modes=["fwd"])  # doctest: +SKIP
    """
    dev = torch.device(device)
    if stage_set not in STAGE_SETS:
        raise ValueError(f"stage_set must be one of {sorted(STAGE_SETS)}, got {stage_set!r}")
    stages = QUICK_STAGES if quick else STAGE_SETS[stage_set]
    batch = batch or (1 if quick else 64)
    warmup = warmup if warmup is not None else (1 if quick else 10)
    reps = reps if reps is not None else (3 if quick else 50)
    default_impls = IMPLS if dev.type == "cuda" else ("eager", "sdpa")
    impls = [i for i in (impls or default_impls) if dev.type == "cuda" or i != "triton"]
    rows: List[dict] = []
    for dtype_name in dtypes:
        for mode in modes:
            for stage in stages:
                results: Dict[str, float] = {}
                for impl in impls:
                    results[impl] = bench_op(impl, stage, batch, dtype_name, mode, dev, warmup, reps)
                for impl, ms in results.items():
                    name, side, channels, heads, window, shift = stage
                    rows.append({
                        "kind": "op", "stage": name,
                        "shape": f"{batch}x{side}x{side}x{channels}/{heads}h w{window} s{shift}",
                        "dtype": dtype_name, "mode": mode, "impl": impl, "ms": round(ms, 4),
                        "speedup_vs_eager": round(results["eager"] / ms, 3) if "eager" in results else None,
                    })
    if include_model:
        model_batch, size = (2, 64) if quick else (batch, 224)
        backends = ("triton", "torch") if dev.type == "cuda" else ("torch",)
        for dtype_name in dtypes:
            for backend in backends:
                ms = bench_model_step(backend, model_batch, size, dtype_name, dev, warmup, reps)
                rows.append({"kind": "model", "dtype": dtype_name, "backend": backend, "batch": model_batch,
                             "size": size, "ms": round(ms, 3)})
    return rows


def format_rows(rows: List[dict]) -> str:
    """A markdown table of the rows of :func:`run_benchmarks`."""
    lines = ["| kind | stage / backend | dtype | mode | impl | ms | × eager |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        if row["kind"] == "op":
            lines.append(f"| op | {row['shape']} | {row['dtype']} | {row['mode']} | {row['impl']} | {row['ms']} | "
                         f"{row['speedup_vs_eager']} |")
        else:
            lines.append(f"| Swin-T step | {row['backend']} (batch {row['batch']}, {row['size']}px) | {row['dtype']} | "
                         f"fwd+bwd+SGD | - | {row['ms']} | - |")
    return "\n".join(lines)


# ------------------------------------------------------------------ ``plugattn bench --op window``
def count_cases(ops: Sequence[str], dtypes: Sequence[str], shapes: Sequence[Tuple[int, ...]], passes: Sequence[str]) -> int:
    """How many rows :func:`iter_benchmarks` yields.

    Example:
        >>> count_cases(OPS, ["fp32"], QUICK_SHAPES, PASSES)
        4
    """
    return len(ops) * len(dtypes) * len(shapes) * len(passes)


def check_cases(ops: Sequence[str], dtypes: Sequence[str], shapes: Sequence[Tuple[int, ...]], passes: Sequence[str]) -> None:
    """ValueError for any argument :func:`iter_benchmarks` cannot run, before anything is timed.

    Example:
        >>> check_cases(OPS, ["fp32"], [(1, 7, 7, 48)], PASSES)
        Traceback (most recent call last):
        ...
        ValueError: window shapes need C divisible by the head width 32, got C=48 in 1x7x7x48
    """
    check_drawn_from(ops, dtypes, passes, OPS, DTYPES, runner="window attention")
    for shape in shapes:
        if len(shape) != 4:
            raise ValueError(f"window shapes are {SHAPE_LAYOUT}, got {'x'.join(map(str, shape))}")
        if shape[3] % HEAD_DIM:
            raise ValueError(f"window shapes need C divisible by the head width {HEAD_DIM}, got C={shape[3]} in "
                             f"{'x'.join(map(str, shape))}")


def _plugattn_backend(qkv: torch.Tensor, heads: int) -> str:
    """What :func:`window_attention` runs for ``qkv`` under the process default backend."""
    backend = resolve_backend(qkv, None, "window_attention")
    if backend == "triton" and triton_unsupported_reason(WINDOW, qkv.shape[-1] // (3 * heads)) is not None:
        return "torch"
    return backend


def iter_benchmarks(
    ops: Sequence[str] = OPS,
    dtypes: Sequence[str] = ("bf16", "fp32"),
    device: str = "cuda",
    shapes: Sequence[Tuple[int, ...]] = FULL_SHAPES,
    passes: Sequence[str] = PASSES,
    compile: bool = True,
    quick: bool = False,
) -> Iterator[Row]:
    """Eager reference vs ``torch.compile`` of it vs plugattn's ``window_attention``, one row per case.

    Shapes are (B, H, W, C); heads = C / 32, window 7, shift 3 when the map is larger than a window.

    Example:
        >>> rows = list(iter_benchmarks(OPS, ["fp32"], "cpu", [(1, 7, 7, 64)], ["fwd"], compile=False, quick=True))
        >>> rows[0]["op"], rows[0]["backend"]
        ('window', 'torch')
    """
    check_cases(ops, dtypes, shapes, passes)
    dev = torch.device(device)
    for dtype_name in dtypes:
        for batch, height, width, channels in shapes:
            heads = channels // HEAD_DIM
            shift = WINDOW // 2 if max(height, width) > WINDOW else 0
            qkv, table = _inputs(batch, height, width, channels, heads, DTYPES[dtype_name], dev, grad=True)
            args = [qkv, table, WINDOW, shift]
            grad = torch.randn(qkv.shape[:3] + (channels,), device=dev, dtype=qkv.dtype)
            differentiable = [qkv, table]
            tensor_bytes = grad.numel() * grad.element_size()
            copy_bandwidth = copy_gbps(grad, device, quick)
            compiled = make_impl("compile") if compile else None
            for pass_name in passes:
                eager_ms = median_ms(timed_pass(window_attention_reference, args, grad, differentiable, pass_name), device, quick)
                compile_ms = None
                if compiled is not None:
                    compile_ms = median_ms(timed_pass(compiled, args, grad, differentiable, pass_name), device, quick)
                ours_ms = median_ms(timed_pass(window_attention, args, grad, differentiable, pass_name), device, quick)
                floor = FORWARD_FLOOR + (BACKWARD_FLOOR if pass_name == "fwd+bwd" else 0)
                yield make_row(
                    "window", dtype_name, (batch, height, width, channels), pass_name, eager_ms, compile_ms, ours_ms,
                    _plugattn_backend(qkv, heads), floor * tensor_bytes, copy_bandwidth,
                )
