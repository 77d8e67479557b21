"""Launch geometry of window attention (its planner, registered with :mod:`plugattn.kernels.plan`)
and the launchers that run the kernels with it.

**The planner's shape.** ``launch_plan("window_attention", shape, dtype, device=...)`` returns the
forward launch, then the backward launch (``phase="backward"``), for ``shape = (B, H, W, C, heads,
window, shift)``: the (B, H, W) token map, C = heads·head_dim (qkv has 3C channels), the window side
M and the shift s. A 4-tuple (B, H, W, C) - the benchmark's shapes - means Swin's defaults: heads = C
/ 32, window 7, shift 3 when the map is larger than the window, else 0. ``channels_last`` is accepted
and ignored: the tokens are channels-last by construction.

**Tiles.** Keys are never split (a softmax row is complete on chip). They occupy
:func:`key_pieces` slots: the window's M² tokens rounded up to a multiple of 16 (the smallest
``tl.dot`` extent), as one power-of-two piece plus at most one power-of-two tail piece, since Triton
tiles must be powers of two; where no such pair exists (M = 10: 100 tokens) the next power of two.
Window 7: 49 tokens -> 64 slots; window 12: 144 -> 128 + 16 (a power of two alone would be 256).
Queries go in blocks of ``BLOCK_M`` (a power of two >= 16): the largest whose (BLOCK_M × keys) fp32
score tile stays within :data:`SCORE_TILE` values for the pass and tl.dot engine (register budget,
checked by tests/kernels/test_gpu_compile_window.py), lowered further while the forward would launch
fewer than two programs per SM.

**Backward parallelism and dB̃.** A backward program walks ``WINDOWS_PER_PROGRAM`` windows of one
head. Where one query block holds a whole window, the program sums dS over its windows in registers
and adds the sum once: the count grows (up to 8) while at least four programs per SM remain, and the
sums meet in one fp32 (heads, QUERY_SLOTS, KEY_SLOTS) buffer through relaxed atomics. Where the
queries take several blocks (and always in deterministic mode, ``torch.use_deterministic_algorithms(
True)``) every program owns a slice of the buffer (``PRIVATE_SLICES``: a read-modify-write per block,
no atomics), and the slices are summed by ``torch.sum`` in a fixed order afterwards; windows per
program then grow until the slices fit :data:`PARTIAL_BUDGET_BYTES` (keeping two programs per SM).
"""
from __future__ import annotations

import inspect
from typing import Dict, List, Optional, Tuple

import torch

from ..dispatch import interpreter_enabled
from ..plan import DEVICES, DeviceSpec, Launch, cdiv, next_power_of_2, pow2_bucket, register_planner, size_hint
from .._common import device_spec, empty_output, launch_planned, tl
from .kernels import window_attention_bwd_kernel, window_attention_fwd_kernel
from .reference import MASK_VALUE, cached

LOG2E = 1.4426950408889634
MAX_TRITON_WINDOW = 12  # Swin's largest window (Swin-B/L at 384 px)
MAX_TRITON_HEAD_DIM = 64
# Largest (BLOCK_M × key slots) fp32 score tile per (tl.dot engine, pass); see the module docstring.
SCORE_TILE: Dict[Tuple[str, str], int] = {
    ("tensor_core", "forward"): 128 * 144,
    ("tensor_core", "backward"): 64 * 64,
    ("fp32", "forward"): 32 * 64,
    ("fp32", "backward"): 16 * 64,
}
MAX_WINDOWS_PER_PROGRAM = 8
PARTIAL_BUDGET_BYTES = 32 * 2**20  # deterministic mode: the per-program bias-gradient slices, all together
# relaxed atomics where this triton's tl.atomic_add takes ``sem`` (all of 3.6-3.8 do; older ones did not)
RELAXED_ATOMICS = "sem" in inspect.signature(tl.atomic_add).parameters if hasattr(tl, "atomic_add") else False


def triton_unsupported_reason(window_size: int, head_dim: int) -> Optional[str]:
    """Why the Triton kernel cannot run this window/head size (``None`` when it can); outside its
    tile limits ``window_attention`` falls back to PyTorch under ``backend="auto"``.

    Example:
        >>> triton_unsupported_reason(12, 32) is None, triton_unsupported_reason(14, 32)
        (True, 'window_size 14 > 12')
    """
    if window_size > MAX_TRITON_WINDOW:
        return f"window_size {window_size} > {MAX_TRITON_WINDOW}"
    if head_dim > MAX_TRITON_HEAD_DIM:
        return f"head_dim {head_dim} > {MAX_TRITON_HEAD_DIM}"
    return None


def key_pieces(tokens: int) -> Tuple[int, int]:
    """(KEYS_MAIN, KEYS_TAIL): power-of-two key-slot pieces (tail 0 or >= 16) covering ``tokens``.

    Example:
        >>> key_pieces(49), key_pieces(144), key_pieces(36), key_pieces(100)
        ((64, 0), (128, 16), (32, 16), (128, 0))
    """
    slots = max(16, -(-tokens // 16) * 16)
    if next_power_of_2(slots) == slots:
        return slots, 0
    main = next_power_of_2(slots) // 2
    tail = slots - main
    return (main, tail) if next_power_of_2(tail) == tail else (next_power_of_2(slots), 0)


def _engine(dtype: torch.dtype) -> str:
    return "fp32" if dtype == torch.float32 else "tensor_core"


SWIN_HEAD_DIM, SWIN_WINDOW = 32, 7  # what a 4-tuple shape implies


def full_shape(shape: Tuple[int, ...]) -> Tuple[int, ...]:
    """``(B, H, W, C, heads, window, shift)``, filling a 4-tuple with Swin's defaults.

    Example:
        >>> full_shape((64, 56, 56, 96)), full_shape((1, 7, 7, 768))
        ((64, 56, 56, 96, 3, 7, 3), (1, 7, 7, 768, 24, 7, 0))
    """
    if len(shape) == 4:
        batch, height, width, channels = shape
        if channels % SWIN_HEAD_DIM:
            raise ValueError(f"window_attention plan: a (B, H, W, C) shape needs C divisible by {SWIN_HEAD_DIM}, "
                             f"got {shape}; give (B, H, W, C, heads, window, shift)")
        shift = SWIN_WINDOW // 2 if max(height, width) > SWIN_WINDOW else 0
        return (batch, height, width, channels, channels // SWIN_HEAD_DIM, SWIN_WINDOW, shift)
    return tuple(shape)


def _check_shape(shape: Tuple[int, ...]) -> Tuple[int, ...]:
    shape = full_shape(shape)
    if len(shape) != 7:
        raise ValueError(f"window_attention plans take shape (B, H, W, C, heads, window, shift) or (B, H, W, C), "
                         f"got {shape}")
    batch, height, width, channels, heads, window, shift = shape
    if heads < 1 or channels % heads or window < 1 or not 0 <= shift < window:
        raise ValueError(f"window_attention plan: invalid (B, H, W, C, heads, window, shift) = {shape}")
    return shape


class Geometry:
    """Sizes every launch derives from ``(B, H, W, C, heads, window, shift)``.

    Under ``torch.compile(dynamic=True)`` B, H and W are symbolic (C, heads and the window come from
    the module's parameters and arguments). Grids and kernel arguments keep them symbolic; each launch
    decision on the window count (tile height at small batch, windows per backward program) compares
    it with a threshold, which a trace records as one range guard (``windows >= t``): a compiled graph
    serves every shape that makes the same decisions, e.g. every batch from 64 up at Swin-T stage 1.
    """

    def __init__(self, shape: Tuple[int, ...], dtype: torch.dtype, device: DeviceSpec) -> None:
        self.batch, self.height, self.width, self.channels, self.heads, self.window, self.shift = _check_shape(shape)
        self.dtype = dtype
        self.head_dim = self.channels // self.heads
        self.n_win_h = cdiv(self.height, self.window)
        self.n_win_w = cdiv(self.width, self.window)
        self.total_windows = self.batch * self.n_win_h * self.n_win_w
        self.tokens = self.window * self.window
        self.keys_main, self.keys_tail = key_pieces(self.tokens)
        self.key_slots = self.keys_main + self.keys_tail
        self.d_pad = max(16, pow2_bucket(self.head_dim, MAX_TRITON_HEAD_DIM))
        self.element = dtype.itemsize
        self.token_bytes = size_hint(self.batch * self.height * self.width * self.channels) * self.element  # T
        self.sm_count = device.sm_count

    def block_m(self, backward: bool) -> int:
        budget = SCORE_TILE[(_engine(self.dtype), "backward" if backward else "forward")]
        block = max(16, min(next_power_of_2(self.tokens), next_power_of_2(budget // self.key_slots + 1) // 2))
        least = -(-self.tokens // 16) * 16
        while block > 16 and self.query_slots(block) * 8 > least * 9:
            block //= 2  # at most 1/8 more query rows than multiples of 16 need (144 tokens: 32, not 64)
        while not backward and block > 16 and self.total_windows * self.heads * -(-self.tokens // block) < 2 * self.sm_count:
            block //= 2  # fill the chip at small batch
        return block

    def query_slots(self, block_m: int) -> int:
        return -(-self.tokens // block_m) * block_m

    def tile_kinds(self) -> int:
        return 4 if self.shift else 1

    def tile_bytes(self, block_m: int) -> int:
        return self.tile_kinds() * self.heads * self.query_slots(block_m) * self.key_slots * 4

    def common_constexprs(self, block_m: int) -> Dict[str, object]:
        upcast = self.dtype == torch.bfloat16 and interpreter_enabled()
        return dict(
            WINDOW=self.window, SHIFT=self.shift, BLOCK_M=block_m, QUERY_SLOTS=self.query_slots(block_m),
            KEYS_MAIN=self.keys_main, KEYS_TAIL=self.keys_tail, D_PAD=self.d_pad,
            # fp32 must not drop to tf32 (fp32 tolerance 1e-5); fp16/bf16 run on tensor cores, fp32 accumulation
            PRECISION="ieee" if (self.dtype == torch.float32 or upcast) else "tf32", UPCAST=upcast,
        )

    def num_warps(self, block_m: int, backward: bool = False) -> int:
        # the backward keeps k, v, dk, dv of every key on chip: spread fp32 ones and 128+ keys over 8 warps
        if backward and (self.dtype == torch.float32 or self.key_slots >= 128):
            return 8
        return 4 if block_m * self.key_slots <= 64 * 64 else 8


def plan_forward(shape: Tuple[int, ...], dtype: torch.dtype, channels_last: bool, device: DeviceSpec,
                 block_m: Optional[int] = None) -> List[Launch]:
    """The forward launch for ``shape = (B, H, W, C, heads, window, shift)`` (see the module docstring);
    ``block_m`` (a power of two >= 16) is forced by tests only.

    Example:
        >>> [launch] = plan_forward((1, 56, 56, 96, 3, 7, 3), torch.bfloat16, False, DEVICES["h100"])
        >>> launch.grid, launch.constexprs["BLOCK_M"], launch.constexprs["KEYS_MAIN"]
        ((64, 3, 2), 32, 64)
    """
    return [_forward_launch(Geometry(shape, dtype, device), block_m)]


def _forward_launch(geo: Geometry, block_m: Optional[int] = None) -> Launch:
    block_m = block_m or geo.block_m(False)
    grid = (geo.total_windows, geo.heads, cdiv(geo.tokens, block_m))
    # read q, k, v, write the output (4T), the bias tile once from DRAM
    moved = 4 * geo.token_bytes + geo.tile_bytes(block_m)
    return Launch("window_attention_fwd_kernel", grid, geo.common_constexprs(block_m), geo.num_warps(block_m), moved)


def private_slices(geo: Geometry, block_m: int, deterministic: bool) -> bool:
    """Whether every backward program owns a slice of the bias-gradient buffer (see the module docstring)."""
    return deterministic or geo.query_slots(block_m) != block_m


def windows_per_program(geo: Geometry, block_m: int, deterministic: bool) -> int:
    """Windows each backward program walks (see the module docstring).

    Example:
        >>> windows_per_program(Geometry((64, 56, 56, 96, 3, 7, 3), torch.bfloat16, DEVICES["h100"]), 64, False)
        8
    """
    single_block = geo.query_slots(block_m) == block_m
    windows = geo.total_windows
    per_program = 1
    while (single_block and per_program < MAX_WINDOWS_PER_PROGRAM
           and cdiv(windows, 2 * per_program) * geo.heads >= 4 * geo.sm_count):
        per_program *= 2
    if private_slices(geo, block_m, deterministic):
        slice_bytes = geo.heads * geo.query_slots(block_m) * geo.key_slots * 4
        while (cdiv(windows, per_program) * slice_bytes > PARTIAL_BUDGET_BYTES
               and cdiv(windows, 2 * per_program) * geo.heads >= 2 * geo.sm_count):
            per_program *= 2
    return per_program


def plan_backward(shape: Tuple[int, ...], dtype: torch.dtype, channels_last: bool, device: DeviceSpec,
                  block_m: Optional[int] = None, per_program: Optional[int] = None) -> List[Launch]:
    """The backward launch for ``shape = (B, H, W, C, heads, window, shift)``; ``PRIVATE_SLICES`` (no
    atomics) whenever ``torch.are_deterministic_algorithms_enabled()`` or the queries take several
    blocks; ``block_m`` and ``per_program`` are forced by tests only.

    Example:
        >>> [launch] = plan_backward((64, 56, 56, 96, 3, 7, 3), torch.bfloat16, False, DEVICES["h100"])
        >>> launch.grid, launch.constexprs["WINDOWS_PER_PROGRAM"]
        ((512, 3), 8)
    """
    return [_backward_launch(Geometry(shape, dtype, device), block_m, per_program)]


def _backward_launch(geo: Geometry, block_m: Optional[int] = None, per_program: Optional[int] = None) -> Launch:
    block_m = block_m or geo.block_m(True)
    deterministic = torch.are_deterministic_algorithms_enabled()
    per_program = per_program or windows_per_program(geo, block_m, deterministic)
    grid = (cdiv(geo.total_windows, per_program), geo.heads)
    private = private_slices(geo, block_m, deterministic)
    constexprs = dict(geo.common_constexprs(block_m), WINDOWS_PER_PROGRAM=per_program,
                      PRIVATE_SLICES=private, RELAXED=RELAXED_ATOMICS)
    slices = size_hint(grid[0]) if private else 1
    # read q, k, v and ∂out, write ∂q, ∂k, ∂v (7T); the tile; the bias-gradient slices
    moved = 7 * geo.token_bytes + geo.tile_bytes(block_m) + slices * geo.heads * geo.query_slots(block_m) * geo.key_slots * 4
    return Launch("window_attention_bwd_kernel", grid, constexprs, geo.num_warps(block_m, backward=True), moved,
                  phase="backward")


@register_planner("window_attention")
def plan_window_attention(shape: Tuple[int, ...], dtype: torch.dtype, channels_last: bool,
                          device: DeviceSpec) -> List[Launch]:
    """The forward launch, then the backward launch (see the module docstring for ``shape``).

    Example:
        >>> [launch.phase for launch in plan_window_attention((1, 7, 7, 96), torch.float32, False, DEVICES["h100"])]
        ['forward', 'backward']
    """
    return plan_forward(shape, dtype, channels_last, device) + plan_backward(shape, dtype, channels_last, device)


# ----------------------------------------------------------------------------- launchers
def problem_shape(qkv: torch.Tensor, heads: int, window: int, shift: int) -> Tuple[int, ...]:
    """The planner's ``(B, H, W, C, heads, window, shift)`` of a (B, H, W, 3C) qkv tensor."""
    batch, height, width, three_c = qkv.shape
    return (batch, height, width, three_c // 3, heads, window, shift)


def _kind_masks(window: int, shift: int, device: torch.device) -> torch.Tensor:
    """(kinds, N, N) SW-MSA masks of the four window kinds (interior, last column, last row, corner)."""
    # built from operator calls only (no Python indexing, which sets the CUDA device): the same code
    # then runs on fake CUDA tensors while torch.compile traces the op on a machine without a GPU

    def build() -> torch.Tensor:
        tokens = window * window
        if not shift:
            return torch.zeros(1, tokens, tokens, device=device)
        within = torch.arange(window, device=device)
        seam = torch.where(within < window - shift, 1, 2)  # (M,) region of a row/column in the last window row/column
        interior = torch.zeros_like(seam)
        masks = []
        for last_row in (0, 1):
            for last_col in (0, 1):
                rows = (seam if last_row else interior).unsqueeze(1)  # (M, 1)
                cols = (seam if last_col else interior).unsqueeze(0)  # (1, M)
                region = (3 * rows + cols).flatten()  # (M, M) -> (N,)
                masks.append(torch.ne(region.unsqueeze(1), region.unsqueeze(0)).float() * MASK_VALUE)
        return torch.stack(masks)

    return cached(("kind_masks", window, shift, str(device)), build)


def bias_tile(bias: torch.Tensor, window: int, shift: int, query_slots: int, key_slots: int) -> torch.Tensor:
    """The dense fp32 (kinds, heads, query_slots, key_slots) logit tile (B + M)·log₂e, built once per
    call: 0 on padding query rows, −inf on padding key slots."""
    heads, tokens, _ = bias.shape
    masks = _kind_masks(window, shift, bias.device)  # (kinds, N, N)
    kinds = masks.shape[0]
    logits = (bias.float().unsqueeze(0) + masks.unsqueeze(1)) * LOG2E  # (kinds, heads, N, N)
    rows = torch.cat([logits, logits.new_zeros(kinds, heads, query_slots - tokens, tokens)], dim=2)
    return torch.cat([rows, logits.new_full((kinds, heads, query_slots, key_slots - tokens), float("-inf"))], dim=3)


def _strides(t: torch.Tensor) -> Tuple[int, ...]:
    return tuple(t.stride())


def launch_forward(qkv: torch.Tensor, bias: torch.Tensor, window: int, shift: int, scale: float,
                   **forced: int) -> torch.Tensor:
    """The forward kernel: (B, H, W, 3C) qkv and (heads, N, N) bias -> (B, H, W, C); ``forced``: tests'
    ``block_m``."""
    heads = bias.shape[0]
    shape = problem_shape(qkv, heads, window, shift)
    out = empty_output(qkv, shape[:3] + (shape[3],))
    if qkv.numel() == 0:
        return out
    geo = Geometry(shape, qkv.dtype, device_spec(qkv))
    plan = _forward_launch(geo, **forced)
    tile = bias_tile(bias, window, shift, plan.constexprs["QUERY_SLOTS"], geo.key_slots)
    launch_planned(
        window_attention_fwd_kernel, plan, qkv, tile, out, *_strides(qkv), *_strides(out),
        geo.height, geo.width, geo.n_win_h, geo.n_win_w, heads, geo.channels, geo.head_dim, float(scale) * LOG2E,
    )
    return out


def launch_backward(grad_out: torch.Tensor, qkv: torch.Tensor, bias: torch.Tensor, window: int, shift: int,
                    scale: float, **forced: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """The backward kernel: (∂qkv (B, H, W, 3C) in qkv's dtype, ∂bias (heads, N, N) in bias's dtype);
    ``forced``: tests' ``block_m`` / ``per_program``."""
    heads, tokens, _ = bias.shape
    shape = problem_shape(qkv, heads, window, shift)
    dqkv = empty_output(qkv, tuple(qkv.shape))
    if qkv.numel() == 0:
        return dqkv, torch.zeros_like(bias)
    geo = Geometry(shape, qkv.dtype, device_spec(qkv))
    plan = _backward_launch(geo, **forced)
    c = plan.constexprs
    tile = bias_tile(bias, window, shift, c["QUERY_SLOTS"], geo.key_slots)
    private = c["PRIVATE_SLICES"]
    slices = plan.grid[0] if private else 1  # symbolic under torch.compile(dynamic=True): never branched on
    # zeros where the kernel adds into the buffer; a private slice of one query block is written once
    written_once = private and c["BLOCK_M"] == c["QUERY_SLOTS"]
    size = (slices, heads, c["QUERY_SLOTS"], geo.key_slots)
    dbias = (empty_output(qkv, size, torch.float32) if written_once
             else qkv.new_zeros(size, dtype=torch.float32))
    launch_planned(
        window_attention_bwd_kernel, plan, qkv, tile, grad_out, dqkv, dbias,
        *_strides(qkv), *_strides(grad_out), *_strides(dqkv),
        geo.height, geo.width, geo.n_win_h, geo.n_win_w, heads, geo.channels, geo.head_dim,
        float(scale), float(scale) * LOG2E, geo.total_windows,
    )
    dbias = dbias.sum(dim=0) if private else dbias.squeeze(0)  # (slices, heads, Q, K) -> (heads, Q, K), fixed order
    # operators, not indexing, .contiguous() or .to() (whose Python bindings set the CUDA device), so
    # a trace on fake CUDA tensors runs without a GPU
    dbias = dbias.narrow(1, 0, tokens).narrow(2, 0, tokens)  # (heads, N, N)
    return dqkv, torch.clone(dbias.type_as(bias), memory_format=torch.contiguous_format)


__all__ = ["MAX_TRITON_HEAD_DIM", "MAX_TRITON_WINDOW", "full_shape", "key_pieces", "launch_backward", "launch_forward",
           "plan_backward", "plan_forward", "plan_window_attention", "triton_unsupported_reason", "windows_per_program"]
