"""Pieces shared by the three kernel files (``simam.py``, ``eca.py``, ``se.py``).

* ``triton`` / ``tl``: the real modules, or a stand-in when triton is not installed so the kernel
  files still import (their kernels are then never launched: ``choose_backend`` picks ``"torch"``
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

from typing import Any, Callable, List, Optional, Sequence, Tuple

import torch

from .dispatch import interpreter_enabled, triton_available
from .plan import (DEVICES, Launch, cdiv, is_symbolic, next_power_of_2, pow2_bucket, resolve_device, size_hint,
                   sym_max)


class _NoTriton:
    """Stand-in for ``triton`` and ``triton.language`` when triton is not installed."""

    constexpr = None
    float32 = int64 = int32 = None

    @staticmethod
    def jit(fn: Optional[Callable] = None, **_: Any) -> Callable:
        return fn if fn is not None else (lambda f: f)

    next_power_of_2 = staticmethod(next_power_of_2)

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
# a real GPU: under the interpreter inductor would try to compile the user kernels for the CPU. Without
# a GPU the kernels never run, and registering a triton_op would import torch._inductor (about 1.3 s of
# the start-up of `import plugattn.attention`), so plain custom ops are registered then.
USE_TRITON_OP = (
    hasattr(torch.library, "triton_op") and triton_available() and not interpreter_enabled()
    and torch.cuda.is_available()
)


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


def check_same_dtype(op: str, x: torch.Tensor, **params: Optional[torch.Tensor]) -> None:
    """Raise ``ValueError`` when a parameter's dtype differs from ``x``'s outside ``torch.autocast``.

    The PyTorch reference cannot mix them (``F.linear`` / ``F.conv1d`` refuse), so neither backend
    does; under autocast (fp32 parameters, low-precision activations) both run.

    Example:
        >>> check_same_dtype("eca", torch.ones(1), weight=torch.ones(1, dtype=torch.float16))
        Traceback (most recent call last):
        ...
        ValueError: eca: weight has dtype float16 but x has float32; pass tensors of one dtype (or run under torch.autocast)
    """
    if _autocast_enabled(x.device.type):
        return
    for name, value in params.items():
        if value is not None and value.dtype != x.dtype:
            raise ValueError(
                f"{op}: {name} has dtype {str(value.dtype).replace('torch.', '')} but x has "
                f"{str(x.dtype).replace('torch.', '')}; pass tensors of one dtype (or run under torch.autocast)"
            )


def _autocast_takes_device() -> bool:
    try:
        torch.is_autocast_enabled("cpu")
        return True
    except TypeError:  # older torch: no device argument
        return False


_AUTOCAST_TAKES_DEVICE = _autocast_takes_device()


def _autocast_enabled(device_type: str) -> bool:
    """Whether autocast is on for ``device_type``; devices autocast does not know (meta) never autocast."""
    if not _AUTOCAST_TAKES_DEVICE:
        return torch.is_autocast_enabled()
    try:
        return torch.is_autocast_enabled(device_type)
    except RuntimeError:  # "unknown device type for autocast", e.g. the meta device FLOP counting uses
        return False


def check_gamma(op: str, x: torch.Tensor, gamma: Optional[torch.Tensor]) -> None:
    """Raise ``ValueError`` unless ``gamma`` is ``None`` or a (C,) tensor for (N, C, H, W) ``x``."""
    if gamma is not None and (not isinstance(gamma, torch.Tensor) or tuple(gamma.shape) != (x.shape[1],)):
        shape = tuple(gamma.shape) if isinstance(gamma, torch.Tensor) else type(gamma).__name__
        raise ValueError(f"{op}: gamma (the per-channel gate) must be None or a tensor of shape (C={x.shape[1]},), got {shape}")


def gated_scale(scale: torch.Tensor, gamma: Optional[torch.Tensor]) -> torch.Tensor:
    """Per-(N, C) scale of ``x + gamma * (x * scale - x)``: ``1 + gamma * (scale - 1)`` (or ``scale``).

    Example:
        >>> gated_scale(torch.tensor([[0.5]]), torch.tensor([0.0]))
        tensor([[1.]])
    """
    if gamma is None:
        return scale
    return 1.0 + gamma.float()[None, :] * (scale - 1.0)


# ----------------------------------------------------------------------------- launch geometry
TILE_ELEMENTS = 2048  # values per streaming tile: 8-16 per thread at 4 warps, no spills
REDUCTION_WAVES = 4  # a split reduction aims at this many programs per SM


def is_channels_last(x: torch.Tensor) -> bool:
    """Whether the channel axis is the fastest (stride 1) - the layout the tiles must follow."""
    return x.shape[1] > 1 and x.stride(1) == 1


def stream_tile(channels: int, hw: int, channels_last: bool) -> Tuple[int, int]:
    """(BLOCK_C, BLOCK_HW) of a streaming tile of at most :data:`TILE_ELEMENTS` values.

    Channels-last maps get wide channel blocks so loads along C coalesce; the others long runs
    along H·W. The same on every device and under the interpreter (CI runs what ships). Symbolic sizes
    (torch.compile with dynamic shapes) guard only on their power-of-two buckets.

    Example:
        >>> stream_tile(256, 3136, False), stream_tile(256, 3136, True)
        ((2, 1024), (64, 32))
    """
    if channels_last and channels > 1:
        block_c = pow2_bucket(channels, 64)
        return block_c, pow2_bucket(hw, TILE_ELEMENTS // block_c)
    block_hw = pow2_bucket(hw, 1024)
    return pow2_bucket(channels, TILE_ELEMENTS // block_hw), block_hw


def reduction_splits(images: int, channel_blocks: int, hw_blocks: int, sm_count: int) -> Tuple[int, int]:
    """(splits, HW blocks per split) of a split reduction over H·W.

    Enough programs to give every SM :data:`REDUCTION_WAVES` of them (at least 2 per SM once the
    HW blocks are evenly shared), never more splits than HW blocks. Each split writes a partial sum
    per (split, n, c); the partials are added in a fixed order (deterministic).

    Symbolic sizes (torch.compile with dynamic shapes): the number of splits is chosen for the traced
    sizes and kept as a constant, the HW blocks per split stay symbolic, so every size is covered without
    a guard (another size may leave the last splits empty: they add zeros).

    Example:
        >>> reduction_splits(1, 1, 392, 132)
        (392, 1)
    """
    if any(is_symbolic(v) for v in (images, channel_blocks, hw_blocks)):
        splits, _ = reduction_splits(size_hint(images), size_hint(channel_blocks), size_hint(hw_blocks), sm_count)
        return splits, cdiv(sym_max(1, hw_blocks), splits)
    base = max(1, images * channel_blocks)
    splits = min(max(1, hw_blocks), max(1, -(-REDUCTION_WAVES * sm_count // base)))
    per_split = -(-max(1, hw_blocks) // splits)
    return -(-max(1, hw_blocks) // per_split), per_split


def needs_int64(*tensors: torch.Tensor) -> bool:
    """Whether some element offset of these tensors exceeds int32 (then kernels index in int64).

    Example:
        >>> needs_int64(torch.empty(2, 3))
        False
    """
    for t in tensors:
        reach = sum((size - 1) * abs(stride) for size, stride in zip(t.shape, t.stride()) if size > 0)
        if reach >= 2**31 - 1:
            return True
    return False


def dense_needs_int64(shape: Sequence[int]) -> bool:
    """:func:`needs_int64` for a dense tensor of ``shape`` (what a plan assumes)."""
    count = 1
    for size in shape:
        count = count * size  # symbolic under torch.compile: one guard (count < 2**31 - 1), not one per size
    return bool(count >= 2**31 - 1)


# ----------------------------------------------------------------------------- Triton helpers
@triton.jit
def tile_offsets(n, channels, hw, stride_n, stride_c, stride_h, stride_w, width,
                 HW_FLAT: tl.constexpr, INT64: tl.constexpr):
    """Element offsets of the (BLOCK_C, BLOCK_HW) tile ``x[n, channels, hw]``: int32 when the launcher
    found every offset below 2³¹ (fewer registers), int64 otherwise."""
    if INT64:
        n = n.to(tl.int64)
        channels = channels.to(tl.int64)
        hw = hw.to(tl.int64)
    base = n * stride_n + channels[:, None] * stride_c
    if HW_FLAT:
        return base + hw[None, :] * stride_w
    else:
        row = hw // width
        col = hw % width
        return base + row[None, :] * stride_h + col[None, :] * stride_w


@triton.jit
def load_tile(ptr, n, channels, hw, stride_n, stride_c, stride_h, stride_w, width, mask,
              HW_FLAT: tl.constexpr, INT64: tl.constexpr):
    """The masked (BLOCK_C, BLOCK_HW) tile ``t[n, channels, hw]`` as fp32 (0 where masked)."""
    offsets = tile_offsets(n, channels, hw, stride_n, stride_c, stride_h, stride_w, width, HW_FLAT, INT64)
    return tl.load(ptr + offsets, mask=mask, other=0.0).to(tl.float32)


@triton.jit
def store_tile(ptr, value, n, channels, hw, stride_n, stride_c, stride_h, stride_w, width, mask,
               HW_FLAT: tl.constexpr, INT64: tl.constexpr):
    """Store the fp32 tile ``value`` into ``t[n, channels, hw]`` in ``t``'s dtype."""
    offsets = tile_offsets(n, channels, hw, stride_n, stride_c, stride_h, stride_w, width, HW_FLAT, INT64)
    tl.store(ptr + offsets, value.to(ptr.dtype.element_ty), mask=mask)


@triton.jit
def split_program(C, N, SPLITS, BLOCK_C: tl.constexpr):
    """(n, channel block, split) of this program in a 1-D split-reduction grid (split fastest)."""
    pid = tl.program_id(0)
    split = pid % SPLITS
    rest = pid // SPLITS
    channel_blocks = tl.cdiv(C, BLOCK_C)
    return rest // channel_blocks, rest % channel_blocks, split


@triton.jit
def split_range(split, BLOCKS_PER_SPLIT, HW, BLOCK_HW: tl.constexpr):
    """[first, last): the share of H·W that ``split`` reduces."""
    first = split * BLOCKS_PER_SPLIT * BLOCK_HW
    return first, tl.minimum(first + BLOCKS_PER_SPLIT * BLOCK_HW, HW)


@triton.jit
def plane_program(C, HW, BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr):
    """(n, channels, channel_ok, hw, mask) of this program in a 1-D grid of whole-plane tiles."""
    pid = tl.program_id(0)
    channel_blocks = tl.cdiv(C, BLOCK_C)
    channels = (pid % channel_blocks) * BLOCK_C + tl.arange(0, BLOCK_C)
    channel_ok = channels < C
    hw = tl.arange(0, BLOCK_HW)
    return pid // channel_blocks, channels, channel_ok, hw, channel_ok[:, None] & (hw < HW)[None, :]


@triton.jit
def tile_program(C, HW, BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr):
    """(n, channels, hw) of this program in a 1-D grid with one program per tile (HW fastest)."""
    pid = tl.program_id(0)
    hw_blocks = tl.cdiv(HW, BLOCK_HW)
    channel_blocks = tl.cdiv(C, BLOCK_C)
    hw = (pid % hw_blocks) * BLOCK_HW + tl.arange(0, BLOCK_HW)
    rest = pid // hw_blocks
    channels = (rest % channel_blocks) * BLOCK_C + tl.arange(0, BLOCK_C)
    return rest // channel_blocks, channels, hw


@triton.jit
def channel_sums_kernel(
    x_ptr, g_ptr, sum_x_ptr, sum_gx_ptr,
    N, C, HW, W, SPLITS, BLOCKS_PER_SPLIT,
    sxn, sxc, sxh, sxw, sgn, sgc, sgh, sgw,
    WITH_GRAD: tl.constexpr, HW_FLAT: tl.constexpr, INT64: tl.constexpr,
    BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr,
):
    """Partial sums per (split, n, c) over the split's share of H·W: Σ x into ``sum_x`` and, WITH_GRAD,
    Σ g·x into ``sum_gx`` (both (SPLITS, N, C) fp32). x (and g) are read exactly once."""
    n, channel_block, split = split_program(C, N, SPLITS, BLOCK_C)
    channels = channel_block * BLOCK_C + tl.arange(0, BLOCK_C)
    channel_ok = channels < C
    acc_x = tl.zeros((BLOCK_C, BLOCK_HW), dtype=tl.float32)
    acc_gx = tl.zeros((BLOCK_C, BLOCK_HW), dtype=tl.float32)
    first, last = split_range(split, BLOCKS_PER_SPLIT, HW, BLOCK_HW)
    for start in range(first, last, BLOCK_HW):
        hw = start + tl.arange(0, BLOCK_HW)
        mask = channel_ok[:, None] & (hw < last)[None, :]
        x = load_tile(x_ptr, n, channels, hw, sxn, sxc, sxh, sxw, W, mask, HW_FLAT, INT64)
        acc_x += x
        if WITH_GRAD:
            g = load_tile(g_ptr, n, channels, hw, sgn, sgc, sgh, sgw, W, mask, HW_FLAT, INT64)
            acc_gx += g * x
    out = (split * N + n) * C + channels
    tl.store(sum_x_ptr + out, tl.sum(acc_x, axis=1), mask=channel_ok)
    if WITH_GRAD:
        tl.store(sum_gx_ptr + out, tl.sum(acc_gx, axis=1), mask=channel_ok)


@triton.jit
def channel_scale_kernel(
    x_ptr, scale_ptr, shift_ptr, y_ptr,
    C, HW, W,
    sxn, sxc, sxh, sxw, syn, syc, syh, syw,
    WITH_SHIFT: tl.constexpr, HW_FLAT: tl.constexpr, INT64: tl.constexpr,
    BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr,
):
    """y[n, c] = x[n, c] · scale[n, c] (+ shift[n, c] WITH_SHIFT); scale/shift are (N, C) fp32.

    One program per tile: one read of x, one write of y.
    """
    n, channels, hw = tile_program(C, HW, BLOCK_C, BLOCK_HW)
    channel_ok = channels < C
    per_channel = n * C + channels
    scale = tl.load(scale_ptr + per_channel, mask=channel_ok, other=0.0)
    mask = channel_ok[:, None] & (hw < HW)[None, :]
    x = load_tile(x_ptr, n, channels, hw, sxn, sxc, sxh, sxw, W, mask, HW_FLAT, INT64)
    y = x * scale[:, None]
    if WITH_SHIFT:
        y += tl.load(shift_ptr + per_channel, mask=channel_ok, other=0.0)[:, None]
    store_tile(y_ptr, y, n, channels, hw, syn, syc, syh, syw, W, mask, HW_FLAT, INT64)


# ----------------------------------------------------------------------------- plans of the two streaming kernels
def plan_channel_sums(shape: Sequence[int], dtype: torch.dtype, channels_last: bool, spec: Any,
                      with_grad: bool = False, phase: str = "forward") -> Launch:
    """The :class:`Launch` of :func:`channel_sums` (a split reduction) for ``shape`` on ``spec``."""
    n, c, h, w = shape  # ints, or SymInts under torch.compile: kept symbolic (see plan.pow2_bucket)
    block_c, block_hw = stream_tile(c, h * w, channels_last)
    channel_blocks, hw_blocks = cdiv(c, block_c), cdiv(h * w, block_hw)
    splits, per_split = reduction_splits(n, channel_blocks, hw_blocks, spec.sm_count)
    element = dtype.itemsize
    read = n * c * h * w * element * (2 if with_grad else 1)
    written = splits * n * c * 4 * (2 if with_grad else 1)
    return Launch(
        "channel_sums_kernel", (n * channel_blocks * splits,),
        {"WITH_GRAD": with_grad, "INT64": dense_needs_int64(shape), "BLOCK_C": block_c, "BLOCK_HW": block_hw},
        num_warps=4, bytes_moved=size_hint(read + written), args={"SPLITS": splits, "BLOCKS_PER_SPLIT": per_split}, phase=phase,
    )


def plan_channel_scale(shape: Sequence[int], dtype: torch.dtype, channels_last: bool, spec: Any,
                       with_shift: bool = False, phase: str = "forward") -> Launch:
    """The :class:`Launch` of :func:`channel_scale` (one program per tile).

    Byte model: one read of x and one write of y; the read is counted as served by L2 (not moved)
    when the tensor that the preceding pass read fits in half of ``spec.l2_bytes``.
    """
    n, c, h, w = shape  # ints, or SymInts under torch.compile: kept symbolic (see plan.pow2_bucket)
    block_c, block_hw = stream_tile(c, h * w, channels_last)
    tiles = n * cdiv(c, block_c) * cdiv(h * w, block_hw)
    tensor = size_hint(n * c * h * w) * dtype.itemsize
    read = 0 if tensor <= spec.l2_bytes // 2 else tensor
    return Launch(
        "channel_scale_kernel", (tiles,),
        {"WITH_SHIFT": with_shift, "INT64": dense_needs_int64(shape), "BLOCK_C": block_c, "BLOCK_HW": block_hw},
        num_warps=4, bytes_moved=read + tensor + size_hint(n * c) * 4 * (2 if with_shift else 1), phase=phase,
    )


def plan_squeeze_and_scale(shape: Sequence[int], dtype: torch.dtype, channels_last: bool, spec: Any) -> List[Launch]:
    """The plan of SE and ECA: forward squeeze (split reduction) and scale; backward sums of x and g·x,
    and scale with shift."""
    return [
        plan_channel_sums(shape, dtype, channels_last, spec),
        plan_channel_scale(shape, dtype, channels_last, spec),
        plan_channel_sums(shape, dtype, channels_last, spec, with_grad=True, phase="backward"),
        plan_channel_scale(shape, dtype, channels_last, spec, with_shift=True, phase="backward"),
    ]


def device_spec(x: torch.Tensor) -> Any:
    """The :class:`~.plan.DeviceSpec` a launcher plans for: the tensor's GPU, or an H100 for CPU tensors
    (under the interpreter), so CI runs the tile sizes the GPU gets."""
    if x.is_cuda:
        index = x.device.index if x.device.index is not None else torch.cuda.current_device()
        if index not in _CUDA_SPECS:
            _CUDA_SPECS[index] = resolve_device(torch.device("cuda", index))
        return _CUDA_SPECS[index]
    return DEVICES["h100"]


_CUDA_SPECS: dict = {}


def launch_planned(kernel: Any, planned: Launch, *args: Any, **constexprs: Any) -> None:
    """Launch ``kernel`` with ``planned``'s grid, constexprs and warps; ``constexprs`` override (e.g.
    INT64 and HW_FLAT, which depend on the actual strides). An empty grid launches nothing."""
    if planned.programs == 0:
        return
    meta = {**planned.constexprs, **constexprs}
    launch(kernel, planned.grid, *args, num_warps=planned.num_warps, **meta)


def channel_sums(x: torch.Tensor, grad: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """(Σ_hw x, Σ_hw grad·x) as (N, C) fp32 tensors: one Triton pass over x (and grad), split over H·W
    so that the GPU fills at any batch size, and the partials added in a fixed order."""
    n, c, h, w = x.shape
    g = grad if grad is not None else x
    planned = plan_channel_sums(x.shape, x.dtype, is_channels_last(x), device_spec(x), with_grad=grad is not None)
    splits = planned.args["SPLITS"]
    partial_x = torch.zeros((splits, n, c), device=x.device, dtype=torch.float32)
    partial_gx = torch.zeros_like(partial_x) if grad is not None else partial_x
    strides, flat = feature_map_strides(x, g)
    if x.numel() > 0:
        launch_planned(channel_sums_kernel, planned, x, g, partial_x, partial_gx, n, c, h * w, w,
                       splits, planned.args["BLOCKS_PER_SPLIT"], *strides, HW_FLAT=flat, INT64=needs_int64(x, g))
    sum_x = partial_x.sum(0)
    return sum_x, (partial_gx.sum(0) if grad is not None else None)


def channel_scale(x: torch.Tensor, scale: torch.Tensor, shift: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``x * scale[:, :, None, None] (+ shift[:, :, None, None])`` with (N, C) fp32 scale/shift;
    the result has x's dtype and memory layout. One read of x, one write."""
    n, c, h, w = x.shape
    y = empty_output(x)
    strides, flat = feature_map_strides(x, y)
    planned = plan_channel_scale(x.shape, x.dtype, is_channels_last(x), device_spec(x), with_shift=shift is not None)
    if x.numel() > 0:
        launch_planned(channel_scale_kernel, planned, x, scale.contiguous(),
                       (shift if shift is not None else scale).contiguous(), y, c, h * w, w, *strides,
                       HW_FLAT=flat, INT64=needs_int64(x, y))
    return y
