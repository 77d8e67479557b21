"""Pieces shared by the three kernel files (``simam.py``, ``eca.py``, ``se.py``).

* ``triton`` / ``tl``: the real modules, or a stand-in when triton is not installed so the kernel
  files still import (their kernels are then never launched: ``resolve_backend`` picks ``"torch"``
  or raises).
* :func:`define_op`: registers a ``torch.library`` custom op - ``triton_op`` on real GPUs where the
  installed torch has it (``torch.compile`` then sees the Triton kernels themselves), plain
  ``custom_op`` otherwise (and always under ``TRITON_INTERPRET=1``, where inductor must not try to
  compile the kernels for the CPU).
* :func:`launch`: launches a kernel the way the chosen registration needs (``wrap_triton`` for
  ``triton_op``).
* :func:`feature_map_strides`: the strides every kernel takes, so any (N, C, H, W) layout -
  contiguous, channels_last or arbitrarily strided - runs without a copy.
* :func:`fx_leaf`: records a functional call as one ``call_function`` node while ``torch.fx``
  traces, so backend dispatch never runs on a proxy.
* Triton helpers used by every kernel: :func:`tile_offsets`, :func:`load_tile`, :func:`store_tile`;
  and the streaming kernels behind :func:`channel_sums` and :func:`channel_scale`.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence, Tuple

import torch

from .dispatch import interpreter_enabled, triton_available


class _NoTriton:
    """Stand-in for ``triton`` and ``triton.language`` when triton is not installed."""

    constexpr = None
    float32 = int64 = int32 = None

    @staticmethod
    def jit(fn: Optional[Callable] = None, **_: Any) -> Callable:
        return fn if fn is not None else (lambda f: f)

    @staticmethod
    def next_power_of_2(n: int) -> int:
        return 1 << max(0, (int(n) - 1).bit_length())

    @staticmethod
    def cdiv(a: int, b: int) -> int:
        return -(-a // b)


if triton_available():
    import triton
    import triton.language as tl
else:  # pragma: no cover - exercised only on installs without triton
    triton = _NoTriton()  # type: ignore[assignment]
    tl = _NoTriton()  # type: ignore[assignment]

# triton_op lets torch.compile trace *into* the op and schedule the Triton kernels itself. It needs
# a real GPU: under the interpreter inductor would try to compile the user kernels for the CPU.
USE_TRITON_OP = hasattr(torch.library, "triton_op") and triton_available() and not interpreter_enabled()


def define_op(name: str) -> Callable[[Callable], Any]:
    """Decorator registering ``fn`` as the custom op ``plugattn::<name>`` (no mutated arguments).

    Example:
        >>> op = define_op("_doc_example_identity")(lambda x: x.clone())  # doctest: +SKIP
    """
    qualname = f"plugattn::{name}"

    def register(fn: Callable) -> Any:
        if USE_TRITON_OP:
            return torch.library.triton_op(qualname, mutates_args=())(fn)
        return torch.library.custom_op(qualname, mutates_args=())(fn)

    return register


def launch(kernel: Any, grid: Tuple[int, ...], *args: Any, **meta: Any) -> None:
    """Launch ``kernel[grid](*args, **meta)``, through ``wrap_triton`` when ops are ``triton_op``s."""
    if USE_TRITON_OP:
        torch.library.wrap_triton(kernel)[grid](*args, **meta)
    else:
        kernel[grid](*args, **meta)


def feature_map_strides(*tensors: torch.Tensor) -> Tuple[Tuple[int, ...], bool]:
    """Strides (N, C, H, W) of each tensor, concatenated, and whether H and W of *every* tensor
    collapse into one axis (stride_h == W * stride_w - true for contiguous and channels_last).

    When they do, kernels index the plane as ``hw * stride_w`` (coalesced, no division); otherwise
    they split ``hw`` into ``(hw // W, hw % W)``. Either way nothing is copied.

    Example:
        >>> feature_map_strides(torch.zeros(2, 3, 4, 5))
        ((60, 20, 5, 1), True)
    """
    strides: Tuple[int, ...] = ()
    flat = True
    for t in tensors:
        s = t.stride()
        flat = flat and (t.shape[2] == 1 or s[2] == t.shape[3] * s[3])
        strides = strides + tuple(s)
    return strides, flat


POISON_OUTPUTS = False  # tests set this so any element a kernel fails to write reads back as NaN


def empty_output(like: torch.Tensor, shape: Optional[Tuple[int, ...]] = None, dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """``torch.empty_like(like)`` (same layout), or a fresh ``shape``/``dtype`` tensor on its device;
    NaN-filled when :data:`POISON_OUTPUTS` is set, so unwritten elements fail the equivalence tests.

    Example:
        >>> empty_output(torch.zeros(2, 3)).shape
        torch.Size([2, 3])
    """
    if shape is None:
        out = torch.empty_like(like, dtype=dtype)
    else:
        out = torch.empty(shape, device=like.device, dtype=dtype or like.dtype)
    if POISON_OUTPUTS:
        out.fill_(float("nan"))
    return out


def fx_leaf(fn: Callable, args: Sequence[Any], kwargs: dict) -> Optional[Any]:
    """While ``torch.fx.symbolic_trace`` runs (the first tensor argument is a Proxy), record
    ``fn(*args, **kwargs)`` as one ``call_function`` node and return its proxy; else ``None``.

    Example:
        >>> fx_leaf(torch.relu, (torch.ones(1),), {}) is None
        True
    """
    first = args[0]
    if isinstance(first, torch.fx.Proxy):
        return first.tracer.create_proxy("call_function", fn, tuple(args), dict(kwargs))
    return None


def check_nchw(op: str, x: torch.Tensor) -> None:
    """Raise ``ValueError`` unless ``x`` is a 4-D (N, C, H, W) floating tensor."""
    if x.dim() != 4:
        raise ValueError(f"{op}: x must have shape (N, C, H, W), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{op}: x must be a floating-point tensor, got dtype {x.dtype}")


@triton.jit
def tile_offsets(n, channels, hw, stride_n, stride_c, stride_h, stride_w, width, HW_FLAT: tl.constexpr):
    """int64 element offsets of the (BLOCK_C, BLOCK_HW) tile ``x[n, channels, hw]``."""
    base = n.to(tl.int64) * stride_n + channels.to(tl.int64)[:, None] * stride_c
    if HW_FLAT:
        return base + hw.to(tl.int64)[None, :] * stride_w
    else:
        row = (hw // width).to(tl.int64)
        col = (hw % width).to(tl.int64)
        return base + row[None, :] * stride_h + col[None, :] * stride_w


@triton.jit
def load_tile(ptr, n, channels, hw, stride_n, stride_c, stride_h, stride_w, width, mask, HW_FLAT: tl.constexpr):
    """The masked (BLOCK_C, BLOCK_HW) tile ``t[n, channels, hw]`` as fp32 (0 where masked)."""
    offsets = tile_offsets(n, channels, hw, stride_n, stride_c, stride_h, stride_w, width, HW_FLAT)
    return tl.load(ptr + offsets, mask=mask, other=0.0).to(tl.float32)


@triton.jit
def store_tile(ptr, value, n, channels, hw, stride_n, stride_c, stride_h, stride_w, width, mask, HW_FLAT: tl.constexpr):
    """Store the fp32 tile ``value`` into ``t[n, channels, hw]`` in ``t``'s dtype."""
    offsets = tile_offsets(n, channels, hw, stride_n, stride_c, stride_h, stride_w, width, HW_FLAT)
    tl.store(ptr + offsets, value.to(ptr.dtype.element_ty), mask=mask)


@triton.jit
def channel_sums_kernel(
    x_ptr, g_ptr, sum_x_ptr, sum_gx_ptr,
    C, HW, W,
    sxn, sxc, sxh, sxw, sgn, sgc, sgh, sgw,
    WITH_GRAD: tl.constexpr, HW_FLAT: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr,
):
    """Per (n, c): Σ_hw x into ``sum_x`` and, WITH_GRAD, Σ_hw g·x into ``sum_gx`` (both (N, C) fp32).

    One program per (image, block of channels); x (and g) are read exactly once.
    """
    n = tl.program_id(0)
    channels = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    channel_ok = channels < C
    acc_x = tl.zeros((BLOCK_C, BLOCK_HW), dtype=tl.float32)
    acc_gx = tl.zeros((BLOCK_C, BLOCK_HW), dtype=tl.float32)
    for start in range(0, HW, BLOCK_HW):
        hw = start + tl.arange(0, BLOCK_HW)
        mask = channel_ok[:, None] & (hw < HW)[None, :]
        x = load_tile(x_ptr, n, channels, hw, sxn, sxc, sxh, sxw, W, mask, HW_FLAT)
        acc_x += x
        if WITH_GRAD:
            g = load_tile(g_ptr, n, channels, hw, sgn, sgc, sgh, sgw, W, mask, HW_FLAT)
            acc_gx += g * x
    out = n.to(tl.int64) * C + channels
    tl.store(sum_x_ptr + out, tl.sum(acc_x, axis=1), mask=channel_ok)
    if WITH_GRAD:
        tl.store(sum_gx_ptr + out, tl.sum(acc_gx, axis=1), mask=channel_ok)


@triton.jit
def channel_scale_kernel(
    x_ptr, scale_ptr, shift_ptr, y_ptr,
    C, HW, W,
    sxn, sxc, sxh, sxw, syn, syc, syh, syw,
    WITH_SHIFT: tl.constexpr, HW_FLAT: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr,
):
    """y[n, c] = x[n, c] · scale[n, c] (+ shift[n, c] WITH_SHIFT); scale/shift are (N, C) fp32.

    One read of x, one write of y.
    """
    n = tl.program_id(0)
    channels = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    channel_ok = channels < C
    per_channel = n.to(tl.int64) * C + channels
    scale = tl.load(scale_ptr + per_channel, mask=channel_ok, other=0.0)
    if WITH_SHIFT:
        shift = tl.load(shift_ptr + per_channel, mask=channel_ok, other=0.0)
    hw_start = tl.program_id(2) * BLOCK_HW
    for start in range(hw_start, HW, BLOCK_HW * tl.num_programs(2)):
        hw = start + tl.arange(0, BLOCK_HW)
        mask = channel_ok[:, None] & (hw < HW)[None, :]
        x = load_tile(x_ptr, n, channels, hw, sxn, sxc, sxh, sxw, W, mask, HW_FLAT)
        y = x * scale[:, None]
        if WITH_SHIFT:
            y += shift[:, None]
        store_tile(y_ptr, y, n, channels, hw, syn, syc, syh, syw, W, mask, HW_FLAT)


def tile_shape(x: torch.Tensor, elements: int = 2048) -> Tuple[int, int]:
    """(BLOCK_C, BLOCK_HW) for a streaming tile of about ``elements`` values.

    Channels-last tensors (stride_c == 1) get wide channel blocks so loads along C coalesce; the
    others get long HW runs. Not autotuned (no GPU was available while writing these kernels).
    """
    hw = x.shape[2] * x.shape[3]
    if x.stride(1) == 1 and x.shape[1] > 1:
        block_c = min(64, triton.next_power_of_2(x.shape[1]))
        block_hw = max(1, min(triton.next_power_of_2(hw), elements // block_c))
    else:
        block_hw = min(triton.next_power_of_2(hw), 1024)
        block_c = max(1, min(triton.next_power_of_2(x.shape[1]), elements // block_hw))
    if interpreter_enabled():  # the interpreter pays per element, not per program: keep tiles small
        block_hw = min(block_hw, 64)
        block_c = min(block_c, 16)
    return block_c, block_hw


def channel_sums(x: torch.Tensor, grad: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """(Σ_hw x, Σ_hw grad·x) as (N, C) fp32 tensors, one Triton pass over x (and grad)."""
    n, c, h, w = x.shape
    sum_x = empty_output(x, (n, c), torch.float32)
    sum_gx = empty_output(x, (n, c), torch.float32) if grad is not None else sum_x
    g = grad if grad is not None else x
    strides, flat = feature_map_strides(x, g)
    block_c, block_hw = tile_shape(x)
    grid = (n, triton.cdiv(c, block_c))
    launch(
        channel_sums_kernel, grid, x, g, sum_x, sum_gx, c, h * w, w, *strides,
        WITH_GRAD=grad is not None, HW_FLAT=flat, BLOCK_C=block_c, BLOCK_HW=block_hw,
    )
    return sum_x, (sum_gx if grad is not None else None)


def channel_scale(x: torch.Tensor, scale: torch.Tensor, shift: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``x * scale[:, :, None, None] (+ shift[:, :, None, None])`` with (N, C) fp32 scale/shift;
    the result has x's dtype and memory layout. One read of x, one write."""
    n, c, h, w = x.shape
    y = empty_output(x)
    strides, flat = feature_map_strides(x, y)
    block_c, block_hw = tile_shape(x)
    hw_blocks = triton.cdiv(h * w, block_hw)
    # enough programs to fill a GPU even when N * C / BLOCK_C is small; each loops over its HW share
    hw_programs = max(1, min(hw_blocks, triton.cdiv(1024, max(1, n * triton.cdiv(c, block_c)))))
    grid = (n, triton.cdiv(c, block_c), hw_programs)
    launch(
        channel_scale_kernel, grid, x, scale, shift if shift is not None else scale, y, c, h * w, w, *strides,
        WITH_SHIFT=shift is not None, HW_FLAT=flat, BLOCK_C=block_c, BLOCK_HW=block_hw,
    )
    return y
