"""Benchmark of Swin window attention (the op behind ``plugattn bench --op window``): plugattn's
``window_attention`` against the PyTorch ways of computing it.

Baselines (all compute softmax(q·kᵀ·scale + B + M)·v on every window, with the cyclic shift):

* eager - (a) the eager reference :func:`plugattn.kernels.window_attention_reference`: explicit
  roll / pad / partition, matmul, add bias and mask, softmax, matmul, reverse;
* sdpa  - (b) the same partition, with bias + mask folded into one additive mask and
  ``F.scaled_dot_product_attention`` on the memory-efficient backend (math on CPU);
* compile - (c) ``torch.compile`` of (a).

A shape is B×H×W×C (Swin's token layout) with Swin's head width 32 (heads = C / 32), window M
(default 7, Swin-T's; 12 is Swin-B at 384 px, the kernel's query-block path) and shift M // 2 when
the map is larger than one window. Byte floors (T = B·H·W·C·element size): forward 4T (read q, k,
v; write the output), backward alone 7T (read q, k, v and ∂out; write ∂q, ∂k, ∂v); the bias table
is negligible. :func:`swin_t_step_ms` times a whole Swin-T training step.
"""
from __future__ import annotations

from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from einops import rearrange

from ..kernels.dispatch import choose_backend, use_backend
from ..kernels.window_attention_kernel import (
    relative_position_index,
    shifted_window_mask,
    window_attention,
    window_attention_reference,
)
from .cases import check_drawn_from
from .results import Row
from .timing import PASSES, copy_gbps, median_ms, timed_pass

Shape = Tuple[int, int, int, int]  # (B, H, W, C)
OPS = ("window",)
SHAPE_LAYOUT = "BxHxWxC"
WINDOW = 7  # Swin-T's window
HEAD_DIM = 32  # Swin's head width: heads = C / 32
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
# Swin-T at 224, batch 64 (Liu et al. 2021, Table 7): 56x56x96 / 3 heads .. 7x7x768 / 24, window 7
FULL_SHAPES: List[Shape] = [(64, 56, 56, 96), (64, 28, 28, 192), (64, 14, 14, 384), (64, 7, 7, 768)]
# Swin-B at 384 px, batch 64: window 12 (``plugattn bench --op window --window 12 --shapes ...``)
SWIN_B_384_SHAPES: List[Shape] = [(64, 96, 96, 128), (64, 48, 48, 256), (64, 24, 24, 512), (64, 12, 12, 1024)]
QUICK_SHAPES: List[Shape] = [(1, 14, 14, 64), (1, 7, 7, 128)]
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


_COMPILED: Dict[str, Callable] = {}


def make_impl(name: str) -> Callable[..., torch.Tensor]:
    """The baseline ``(qkv, table, window, shift) -> out`` named ``name``: "eager", "sdpa" or "compile".

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
    raise ValueError(f"impl must be one of 'eager', 'sdpa', 'compile', got {name!r}")


def count_cases(ops: Sequence[str], dtypes: Sequence[str], shapes: Sequence[Tuple[int, ...]], passes: Sequence[str]) -> int:
    """How many rows :func:`iter_benchmarks` yields.

    Example:
        >>> count_cases(OPS, ["fp32"], QUICK_SHAPES, PASSES)
        4
    """
    return len(ops) * len(dtypes) * len(shapes) * len(passes)


def check_cases(ops: Sequence[str], dtypes: Sequence[str], shapes: Sequence[Tuple[int, ...]], passes: Sequence[str],
                window: int = WINDOW) -> None:
    """ValueError for any argument :func:`iter_benchmarks` cannot run, before anything is timed.

    Example:
        >>> check_cases(OPS, ["fp32"], [(1, 7, 7, 48)], PASSES)
        Traceback (most recent call last):
        ...
        ValueError: window shapes need C divisible by the head width 32, got C=48 in 1x7x7x48
    """
    check_drawn_from(ops, dtypes, passes, OPS, DTYPES, runner="window attention")
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be an integer >= 1, got {window!r}")
    for shape in shapes:
        if len(shape) != 4:
            raise ValueError(f"window shapes are {SHAPE_LAYOUT}, got {'x'.join(map(str, shape))}")
        if shape[3] % HEAD_DIM:
            raise ValueError(f"window shapes need C divisible by the head width {HEAD_DIM}, got C={shape[3]} in "
                             f"{'x'.join(map(str, shape))}")


def iter_benchmarks(
    ops: Sequence[str] = OPS,
    dtypes: Sequence[str] = ("bf16", "fp32"),
    device: str = "cuda",
    shapes: Sequence[Tuple[int, ...]] = FULL_SHAPES,
    passes: Sequence[str] = PASSES,
    compile: bool = True,
    quick: bool = False,
    window: int = WINDOW,
) -> Iterator[Row]:
    """Eager reference, SDPA and ``torch.compile`` of the reference vs plugattn's ``window_attention``,
    one :class:`~.results.Row` per (dtype, shape, pass).

    Example:
        >>> rows = list(iter_benchmarks(OPS, ["fp32"], "cpu", [(1, 7, 7, 64)], ["fwd"], compile=False, quick=True))
        >>> rows[0].op, rows[0].backend, rows[0].sdpa_ms > 0
        ('window', 'torch', True)
    """
    check_cases(ops, dtypes, shapes, passes, window)
    dev = torch.device(device)
    for dtype_name in dtypes:
        for batch, height, width, channels in shapes:
            heads = channels // HEAD_DIM
            shift = window // 2 if max(height, width) > window else 0
            qkv = torch.randn(batch, height, width, 3 * channels, device=dev, dtype=DTYPES[dtype_name], requires_grad=True)
            table = (0.02 * torch.randn((2 * window - 1) ** 2, heads, device=dev, dtype=qkv.dtype)).requires_grad_(True)
            args = [qkv, table, window, shift]
            grad = torch.randn(qkv.shape[:3] + (channels,), device=dev, dtype=qkv.dtype)
            differentiable = [qkv, table]
            tensor_bytes = grad.numel() * grad.element_size()
            copy_bandwidth = copy_gbps(grad, device, quick)
            choice = choose_backend("window_attention", qkv, window_size=window, head_dim=HEAD_DIM)
            baselines = ["eager", "sdpa"] + (["compile"] if compile else [])
            for pass_name in passes:
                ms = {name: median_ms(timed_pass(make_impl(name), args, grad, differentiable, pass_name), device, quick)
                      for name in baselines}
                ours_ms = median_ms(timed_pass(window_attention, args, grad, differentiable, pass_name), device, quick)
                floor = FORWARD_FLOOR + (BACKWARD_FLOOR if pass_name == "fwd+bwd" else 0)
                yield Row("window", dtype_name, (batch, height, width, channels), pass_name, ms["eager"], ms.get("compile"),
                          ours_ms, choice.backend, choice.reason, floor * tensor_bytes, copy_bandwidth, sdpa_ms=ms["sdpa"])


def swin_t_step_ms(backend: str, batch: int, size: int, dtype_name: str, device: str,
                   run_s: Optional[float] = None, quick: bool = False) -> float:
    """Milliseconds of one Swin-T training step (forward, cross-entropy, backward, SGD) with the
    process backend set to ``backend`` (``"triton"``: the kernel; ``"torch"``: the reference).

    Example:
        >>> swin_t_step_ms("torch", 1, 32, "fp32", "cpu", quick=True) > 0  # doctest: +SKIP
        True
    """
    from ..backbones.vit.swin import swin_tiny

    dev = torch.device(device)
    torch.manual_seed(0)
    model = swin_tiny().to(dev).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    images = torch.randn(batch, 3, size, size, device=dev)
    labels = torch.randint(0, 1000, (batch,), device=dev)
    use_autocast = DTYPES[dtype_name] != torch.float32

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(dev.type, dtype=DTYPES[dtype_name], enabled=use_autocast):
            loss = F.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()

    with use_backend(backend):
        return median_ms(step, dev, quick, run_s)
