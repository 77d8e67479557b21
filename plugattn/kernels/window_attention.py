"""Fused (shifted) window attention of the Swin Transformer: Triton kernels, launchers, the PyTorch
reference and the autograd / ``torch.library`` wiring, in one file (Liger-kernel style).

Paper: Liu, Lin, Cao, Hu, Wei, Zhang, Lin, Guo, "Swin Transformer: Hierarchical Vision Transformer
using Shifted Windows", ICCV 2021. Eq. (4): for every window and head,

    Attention(Q, K, V) = SoftMax(Q·Kᵀ/√d + B) · V,

with B gathered from the relative position bias table B̂ of shape ((2M−1)², heads) by the
relative offset of the two tokens (Sec. 3.2), and, for the shifted configuration (SW-MSA, Sec. 3.2
"Efficient batch computation for shifted configuration"), a cyclic shift of the map by
``shift_size`` towards the top-left plus a mask M that stops tokens from different sub-windows
of a merged window attending to each other.

**Mask convention.** As in the official code and timm, M is −100 (not −inf) between tokens of
different regions and 0 within a region; softmax turns −100 into e^−100 ≈ 0, and a row is never
fully masked, so no NaN can arise. The regions are the 3×3 slices
``[0, Hp−M), [Hp−M, Hp−s), [Hp−s, Hp)`` (same for the width) of the padded, shifted map.

**Padding convention (timm's).** When H or W is not a multiple of the window M, the map is
cyclically shifted over its real H×W extent first and then zero-padded at the bottom/right to
Hp×Wp; the padded tokens enter the attention with q = k = v = 0 (so they are keys whose logit is
just B + M, values 0), and their outputs are dropped. This is exactly timm's
``SwinTransformerBlock`` on a map padded before the qkv projection when qkv has no bias.

**What is fused.** The Triton forward computes, per (window, head, block of query slots)
program, the source pixel of each window slot by index arithmetic (cyclic shift + window partition
+ padding, no copy), loads q/k/v through their strides (views of one qkv tensor are fine), gathers B
from the table, builds M from the slot coordinates, does softmax(q·kᵀ·scale + B + M)·v in fp32 on
chip and stores the result straight at the source pixel (reverse partition + reverse shift). All
keys of a window (≤ 12×12 = 144 tokens, padded to a power of two) and a head dim ≤ 64 fit on chip,
so every softmax row is complete in one tile and no online softmax is needed; the queries go in
blocks where a whole window would not fit shared memory (12×12) or would spill registers (fp32),
see ``_query_block``. The backward
recomputes P and gives dq, dk, dv and the gradient of the bias table: a program keeps a window's k,
v, dk and dv on chip while its query blocks go by, and dS = P∘(dP − rowsum(P∘dP)) is added
atomically into a (heads, N, N) buffer (summed over a few windows first when one block holds all
queries); a second kernel folds that buffer into the ((2M−1)², heads) table gradient with a
deterministic one-hot reduction.

Public entry point: :func:`window_attention` (dispatches through
:func:`plugattn.kernels.dispatch.resolve_backend`); the PyTorch reference is
:func:`window_attention_reference`; the custom ops are ``torch.ops.plugattn.window_attention``
and ``torch.ops.plugattn.window_attention_backward``.
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from einops import rearrange

from .dispatch import get_backend, interpreter_enabled, resolve_backend, triton_available

MASK_VALUE = -100.0  # Swin's value for cross-region pairs (official code and timm)
# A window's M² tokens pad to a power of two (N_PAD slots); all keys of a window are one tile.
# 12 is the largest window Swin uses (Swin-B/L at 384 px).
MAX_TRITON_WINDOW = 12
# (tl.dot engine, pass) -> {N_PAD: query slots per block}; windows whose N_PAD is absent take all their
# queries at once (see _query_block)
QUERY_BLOCKS: Dict[Tuple[str, str], Dict[int, int]] = {
    ("tensor_core", "forward"): {256: 64},
    ("tensor_core", "backward"): {128: 32, 256: 16},
    ("fp32", "forward"): {64: 32, 128: 16, 256: 16},
    ("fp32", "backward"): {64: 16, 128: 16, 256: 16},
}
MAX_TRITON_HEAD_DIM = 64

__all__ = [
    "MASK_VALUE",
    "window_attention",
    "window_attention_reference",
    "relative_position_index",
    "shifted_window_mask",
]


# ---------------------------------------------------------------------------------------------
# Argument checks
# ---------------------------------------------------------------------------------------------
def _check_arguments(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, table: torch.Tensor, window_size: int, shift_size: int
) -> None:
    if isinstance(window_size, bool) or not isinstance(window_size, int) or window_size < 1:
        raise ValueError(f"window_size must be an integer >= 1, got {window_size!r}")
    if isinstance(shift_size, bool) or not isinstance(shift_size, int) or not 0 <= shift_size < window_size:
        raise ValueError(f"shift_size must be an integer in [0, window_size={window_size}), got {shift_size!r}")
    if q.dim() != 5:
        raise ValueError(f"q must have shape (B, H, W, heads, head_dim), got shape {tuple(q.shape)}")
    for name, t in (("k", k), ("v", v)):
        if t.shape != q.shape:
            raise ValueError(f"{name} must have the shape of q {tuple(q.shape)}, got {tuple(t.shape)}")
        if t.dtype != q.dtype or t.device != q.device:
            raise ValueError(f"{name} must match q's dtype/device ({q.dtype}, {q.device}), got ({t.dtype}, {t.device})")
    heads = q.shape[3]
    expected = ((2 * window_size - 1) ** 2, heads)
    if tuple(table.shape) != expected:
        raise ValueError(
            f"rel_pos_bias must be the ((2*window_size-1)**2, heads) = {expected} table, got shape {tuple(table.shape)}"
        )
    if table.device != q.device:
        raise ValueError(f"rel_pos_bias must be on q's device {q.device}, got {table.device}")


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


# ---------------------------------------------------------------------------------------------
# PyTorch reference (plain differentiable PyTorch; also the CPU path of the modules)
# ---------------------------------------------------------------------------------------------
_CACHE: Dict[tuple, torch.Tensor] = {}


def _cached(key: tuple, build):
    # Eager calls reuse the index/mask (as timm keeps them in buffers); under torch.compile the
    # builders are traced instead, so the compiled graph needs no Python-side state.
    if torch.compiler.is_compiling():
        return build()
    if key not in _CACHE:
        _CACHE[key] = build()
    return _CACHE[key]


def relative_position_index(window_size: int, device: torch.device = torch.device("cpu")) -> torch.Tensor:
    """(N, N) long index into the ((2M−1)², heads) bias table, N = M² (Swin Sec. 3.2).

    Token t sits at (t // M, t % M); the pair (t1, t2) uses row
    (r1 − r2 + M − 1)·(2M − 1) + (c1 − c2 + M − 1).

    Example:
        >>> relative_position_index(2).tolist()
        [[4, 3, 1, 0], [5, 4, 2, 1], [7, 6, 4, 3], [8, 7, 5, 4]]
    """

    def build() -> torch.Tensor:
        rows, cols = torch.meshgrid(
            torch.arange(window_size, device=device), torch.arange(window_size, device=device), indexing="ij"
        )
        rows, cols = rows.flatten(), cols.flatten()  # (N,)
        d_row = rows[:, None] - rows[None, :] + window_size - 1  # (N, N)
        d_col = cols[:, None] - cols[None, :] + window_size - 1
        return d_row * (2 * window_size - 1) + d_col

    return _cached(("index", window_size, str(device)), build)


def shifted_window_mask(
    padded_h: int, padded_w: int, window_size: int, shift_size: int, device: torch.device = torch.device("cpu")
) -> torch.Tensor:
    """(nWh·nWw, N, N) additive SW-MSA mask on the padded map: −100 across regions, 0 within.

    Example:
        >>> shifted_window_mask(4, 4, 2, 1).shape
        torch.Size([4, 4, 4])
    """

    def build() -> torch.Tensor:
        region = torch.zeros(padded_h, padded_w, device=device)
        bounds_h = (0, padded_h - window_size, padded_h - shift_size, padded_h)
        bounds_w = (0, padded_w - window_size, padded_w - shift_size, padded_w)
        for a in range(3):
            for b in range(3):
                region[bounds_h[a] : bounds_h[a + 1], bounds_w[b] : bounds_w[b + 1]] = 3 * a + b
        # (Hp, Wp) -> (nW, N)
        region = rearrange(region, "(nh m1) (nw m2) -> (nh nw) (m1 m2)", m1=window_size, m2=window_size)
        cross = region[:, :, None] != region[:, None, :]  # (nW, N, N)
        return cross.float() * MASK_VALUE

    return _cached(("mask", padded_h, padded_w, window_size, shift_size, str(device)), build)


def window_attention_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    rel_pos_bias: torch.Tensor,
    window_size: int,
    shift_size: int = 0,
    scale: Optional[float] = None,
) -> torch.Tensor:
    """Swin (S)W-MSA in separate PyTorch passes: shift, pad, partition, q·kᵀ·scale + B + M,
    softmax, ·v, reverse partition, crop, reverse shift. Computes in the dtype of q.

    q, k, v: (B, H, W, heads, head_dim); rel_pos_bias: ((2M−1)², heads). Returns (B, H, W, heads, head_dim).

    Example:
        >>> q = torch.randn(1, 5, 6, 2, 4)
        >>> window_attention_reference(q, q, q, torch.zeros(9, 2), 2, 1).shape
        torch.Size([1, 5, 6, 2, 4])
    """
    _check_arguments(q, k, v, rel_pos_bias, window_size, shift_size)
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    _, height, width, _, _ = q.shape
    m = window_size
    pad_h, pad_w = (-height) % m, (-width) % m

    def to_windows(t: torch.Tensor) -> torch.Tensor:
        if shift_size:  # timm order: roll the real map, then pad
            t = torch.roll(t, shifts=(-shift_size, -shift_size), dims=(1, 2))
        t = F.pad(t, (0, 0, 0, 0, 0, pad_w, 0, pad_h))  # (B, Hp, Wp, heads, D)
        return rearrange(t, "b (nh m1) (nw m2) n d -> b (nh nw) n (m1 m2) d", m1=m, m2=m)

    qw, kw, vw = to_windows(q), to_windows(k), to_windows(v)  # (B, nW, heads, N, D)
    attn = (qw * scale) @ kw.transpose(-1, -2)  # (B, nW, heads, N, N)
    index = relative_position_index(m, q.device)
    bias = rearrange(rel_pos_bias[index], "n1 n2 h -> h n1 n2").to(attn.dtype)  # (heads, N, N)
    attn = attn + bias
    if shift_size:
        mask = shifted_window_mask(height + pad_h, width + pad_w, m, shift_size, q.device)  # (nW, N, N)
        attn = attn + mask[:, None].to(attn.dtype)
    out = attn.softmax(dim=-1) @ vw  # (B, nW, heads, N, D)
    out = rearrange(out, "b (nh nw) n (m1 m2) d -> b (nh m1) (nw m2) n d", nh=(height + pad_h) // m, m1=m, m2=m)
    out = out[:, :height, :width]
    if shift_size:
        out = torch.roll(out, shifts=(shift_size, shift_size), dims=(1, 2))
    return out


# ---------------------------------------------------------------------------------------------
# Triton kernels
# ---------------------------------------------------------------------------------------------
if triton_available():
    import triton
    import triton.language as tl

    @triton.jit
    def _dot(a, b, PRECISION: tl.constexpr, UPCAST: tl.constexpr):
        """a @ b with fp32 accumulation; UPCAST works around the interpreter's broken bf16 tl.dot
        (the operands are exact bf16 values, so fp32 "ieee" gives what bf16 tensor cores give)."""
        if UPCAST:
            a = a.to(tl.float32)
            b = b.to(tl.float32)
        return tl.dot(a, b, input_precision=PRECISION)

    @triton.jit
    def _slot_sources(slots, window, height, width, n_win_w, window_exists, WINDOW: tl.constexpr, SHIFT: tl.constexpr):
        """Window slots (a vector of token numbers t = row·M + col) of window ``window`` ->
        (source row, source col, slot is a real token of the map)."""
        # position in the shifted, padded frame
        row = (window // n_win_w) * WINDOW + slots // WINDOW
        col = (window % n_win_w) * WINDOW + slots % WINDOW
        real = (slots < WINDOW * WINDOW) & (row < height) & (col < width) & window_exists
        # timm order: the real map is rolled by -SHIFT, so shifted row r reads source row (r + SHIFT) mod H
        return (row + SHIFT) % height, (col + SHIFT) % width, real

    @triton.jit
    def _load_rows(ptr, batch, src_row, src_col, head, real, dims, head_dim,
                   stride_b, stride_h, stride_w, stride_n, stride_d):
        """(len(slots), D_PAD) tile of a (B, H, W, heads, head_dim) tensor at the slots' source pixels; 0 elsewhere."""
        offsets = batch * stride_b + src_row * stride_h + src_col * stride_w + head * stride_n
        mask = real[:, None] & (dims < head_dim)[None, :]
        return tl.load(ptr + offsets[:, None] + dims[None, :] * stride_d, mask=mask, other=0.0)

    @triton.jit
    def _store_rows(ptr, tile, batch, src_row, src_col, head, real, dims, head_dim,
                    stride_b, stride_h, stride_w, stride_n, stride_d):
        """Inverse of _load_rows: the reverse partition and reverse shift are this scatter."""
        offsets = batch * stride_b + src_row * stride_h + src_col * stride_w + head * stride_n
        mask = real[:, None] & (dims < head_dim)[None, :]
        tl.store(ptr + offsets[:, None] + dims[None, :] * stride_d, tile.to(ptr.dtype.element_ty), mask=mask)

    @triton.jit
    def _region(row, col, padded_h, padded_w, WINDOW: tl.constexpr, SHIFT: tl.constexpr):
        """Which of the 3×3 SW-MSA regions of the shifted, padded map a position lies in."""
        region_h = tl.where(row < padded_h - WINDOW, 0, tl.where(row < padded_h - SHIFT, 1, 2))
        region_w = tl.where(col < padded_w - WINDOW, 0, tl.where(col < padded_w - SHIFT, 1, 2))
        return region_h * 3 + region_w

    @triton.jit
    def _bias_and_mask(
        table_ptr, stride_tab_e, stride_tab_h, head, query_slots, key_slots, window, n_win_w, padded_h, padded_w,
        WINDOW: tl.constexpr, SHIFT: tl.constexpr,
    ):
        """(len(query_slots), len(key_slots)) fp32: gathered relative position bias + SW-MSA mask;
        -inf on the key slots beyond the M·M window tokens (power-of-two padding)."""
        query_in_window = query_slots < WINDOW * WINDOW
        key_in_window = key_slots < WINDOW * WINDOW
        q_r, q_c = query_slots // WINDOW, query_slots % WINDOW
        k_r, k_c = key_slots // WINDOW, key_slots % WINDOW
        index = (q_r[:, None] - k_r[None, :] + WINDOW - 1) * (2 * WINDOW - 1) + (q_c[:, None] - k_c[None, :] + WINDOW - 1)
        pair = query_in_window[:, None] & key_in_window[None, :]
        bias = tl.load(table_ptr + index * stride_tab_e + head * stride_tab_h, mask=pair, other=0.0).to(tl.float32)
        if SHIFT > 0:
            top = (window // n_win_w) * WINDOW
            left = (window % n_win_w) * WINDOW
            q_region = _region(top + q_r, left + q_c, padded_h, padded_w, WINDOW, SHIFT)
            k_region = _region(top + k_r, left + k_c, padded_h, padded_w, WINDOW, SHIFT)
            bias = tl.where(q_region[:, None] != k_region[None, :], bias + -100.0, bias)
        return tl.where(key_in_window[None, :], bias, float("-inf"))

    @triton.jit
    def _softmax_rows(scores):
        scores = scores - tl.max(scores, axis=1)[:, None]
        probs = tl.exp(scores)
        return probs / tl.sum(probs, axis=1)[:, None]

    @triton.jit
    def _window_attention_fwd_kernel(
        q_ptr, k_ptr, v_ptr, table_ptr, out_ptr,
        stride_qb, stride_qh, stride_qw, stride_qn, stride_qd,
        stride_kb, stride_kh, stride_kw, stride_kn, stride_kd,
        stride_vb, stride_vh, stride_vw, stride_vn, stride_vd,
        stride_ob, stride_oh, stride_ow, stride_on, stride_od,
        stride_tab_e, stride_tab_h,
        height, width, n_win_h, n_win_w, head_dim, scale,
        WINDOW: tl.constexpr, SHIFT: tl.constexpr, N_PAD: tl.constexpr, BLOCK_M: tl.constexpr,
        D_PAD: tl.constexpr, PRECISION: tl.constexpr, UPCAST: tl.constexpr,
    ):
        """One program: BLOCK_M query slots of one (window, head) against all N_PAD key slots."""
        pid_window = tl.program_id(0)  # over B * nWh * nWw
        head = tl.program_id(1)
        query_block = tl.program_id(2)  # over ceil(M² / BLOCK_M)
        windows_per_image = n_win_h * n_win_w
        batch = (pid_window // windows_per_image).to(tl.int64)
        window = pid_window % windows_per_image
        dims = tl.arange(0, D_PAD)
        key_slots = tl.arange(0, N_PAD)
        query_slots = query_block * BLOCK_M + tl.arange(0, BLOCK_M)
        k_row, k_col, k_real = _slot_sources(key_slots, window, height, width, n_win_w, True, WINDOW, SHIFT)
        q_row, q_col, q_real = _slot_sources(query_slots, window, height, width, n_win_w, True, WINDOW, SHIFT)
        # padding tokens load q = k = v = 0 (timm pads after the qkv projection of a bias-free map)
        q = _load_rows(q_ptr, batch, q_row, q_col, head, q_real, dims, head_dim,
                       stride_qb, stride_qh, stride_qw, stride_qn, stride_qd)  # (BLOCK_M, D_PAD)
        k = _load_rows(k_ptr, batch, k_row, k_col, head, k_real, dims, head_dim,
                       stride_kb, stride_kh, stride_kw, stride_kn, stride_kd)  # (N_PAD, D_PAD)
        v = _load_rows(v_ptr, batch, k_row, k_col, head, k_real, dims, head_dim,
                       stride_vb, stride_vh, stride_vw, stride_vn, stride_vd)  # (N_PAD, D_PAD)

        scores = _dot(q, tl.trans(k), PRECISION, UPCAST) * scale  # (BLOCK_M, N_PAD) fp32
        scores += _bias_and_mask(table_ptr, stride_tab_e, stride_tab_h, head, query_slots, key_slots, window,
                                 n_win_w, n_win_h * WINDOW, n_win_w * WINDOW, WINDOW, SHIFT)
        probs = _softmax_rows(scores)
        out = _dot(probs.to(v.dtype), v, PRECISION, UPCAST)  # (BLOCK_M, D_PAD) fp32
        _store_rows(out_ptr, out, batch, q_row, q_col, head, q_real, dims, head_dim,
                    stride_ob, stride_oh, stride_ow, stride_on, stride_od)

    @triton.jit
    def _add_dscore(dscore_ptr, dscore, head, query_slots, key_slots, WINDOW: tl.constexpr, N_PAD: tl.constexpr):
        """Atomically add a (queries, keys) block of dS into the (heads, N_PAD, N_PAD) fp32 buffer."""
        pair = (query_slots < WINDOW * WINDOW)[:, None] & (key_slots < WINDOW * WINDOW)[None, :]
        ptrs = dscore_ptr + head * N_PAD * N_PAD + query_slots[:, None] * N_PAD + key_slots[None, :]
        tl.atomic_add(ptrs, dscore, mask=pair)

    @triton.jit
    def _window_attention_bwd_kernel(
        q_ptr, k_ptr, v_ptr, table_ptr, dout_ptr, dq_ptr, dk_ptr, dv_ptr, dscore_ptr,
        stride_qb, stride_qh, stride_qw, stride_qn, stride_qd,
        stride_kb, stride_kh, stride_kw, stride_kn, stride_kd,
        stride_vb, stride_vh, stride_vw, stride_vn, stride_vd,
        stride_gb, stride_gh, stride_gw, stride_gn, stride_gd,
        stride_db, stride_dh, stride_dw, stride_dn, stride_dd,
        stride_tab_e, stride_tab_h,
        height, width, n_win_h, n_win_w, head_dim, scale, total_windows,
        WINDOW: tl.constexpr, SHIFT: tl.constexpr, N_PAD: tl.constexpr, BLOCK_M: tl.constexpr,
        D_PAD: tl.constexpr, WINDOWS_PER_PROGRAM: tl.constexpr, PRECISION: tl.constexpr, UPCAST: tl.constexpr,
    ):
        """One program: WINDOWS_PER_PROGRAM windows of one head. Per window, k and v stay on chip while
        the query slots go by in blocks of BLOCK_M (recomputing P), accumulating dk and dv; dq is
        stored per block. The logit gradient dS feeds the bias-table gradient through the (heads,
        N_PAD, N_PAD) buffer: summed over the program's windows when one block holds every query
        (BLOCK_M == N_PAD), else added block by block."""
        pid = tl.program_id(0)
        head = tl.program_id(1)
        windows_per_image = n_win_h * n_win_w
        dims = tl.arange(0, D_PAD)
        key_slots = tl.arange(0, N_PAD)
        single_block: tl.constexpr = BLOCK_M == N_PAD
        n_blocks: tl.constexpr = (WINDOW * WINDOW + BLOCK_M - 1) // BLOCK_M
        dscore_sum = tl.zeros((BLOCK_M, N_PAD), dtype=tl.float32)
        for step in range(WINDOWS_PER_PROGRAM):
            global_window = pid * WINDOWS_PER_PROGRAM + step
            window_exists = global_window < total_windows
            batch = (global_window // windows_per_image).to(tl.int64)
            window = global_window % windows_per_image
            k_row, k_col, k_real = _slot_sources(key_slots, window, height, width, n_win_w, window_exists, WINDOW, SHIFT)
            k = _load_rows(k_ptr, batch, k_row, k_col, head, k_real, dims, head_dim,
                           stride_kb, stride_kh, stride_kw, stride_kn, stride_kd)  # (N_PAD, D_PAD)
            v = _load_rows(v_ptr, batch, k_row, k_col, head, k_real, dims, head_dim,
                           stride_vb, stride_vh, stride_vw, stride_vn, stride_vd)
            dk = tl.zeros((N_PAD, D_PAD), dtype=tl.float32)
            dv = tl.zeros((N_PAD, D_PAD), dtype=tl.float32)
            for block in range(n_blocks):
                query_slots = block * BLOCK_M + tl.arange(0, BLOCK_M)
                q_row, q_col, q_real = _slot_sources(query_slots, window, height, width, n_win_w, window_exists,
                                                     WINDOW, SHIFT)
                q = _load_rows(q_ptr, batch, q_row, q_col, head, q_real, dims, head_dim,
                               stride_qb, stride_qh, stride_qw, stride_qn, stride_qd)  # (BLOCK_M, D_PAD)
                # rows of padding slots / missing windows have dout = 0, hence dscore = 0 there
                dout = _load_rows(dout_ptr, batch, q_row, q_col, head, q_real, dims, head_dim,
                                  stride_gb, stride_gh, stride_gw, stride_gn, stride_gd).to(v.dtype)

                scores = _dot(q, tl.trans(k), PRECISION, UPCAST) * scale  # (BLOCK_M, N_PAD) fp32
                scores += _bias_and_mask(table_ptr, stride_tab_e, stride_tab_h, head, query_slots, key_slots, window,
                                         n_win_w, n_win_h * WINDOW, n_win_w * WINDOW, WINDOW, SHIFT)
                probs = _softmax_rows(scores)
                dv += _dot(tl.trans(probs.to(v.dtype)), dout, PRECISION, UPCAST)  # (N_PAD, D_PAD)
                dprobs = _dot(dout, tl.trans(v), PRECISION, UPCAST)  # (BLOCK_M, N_PAD)
                row_dot = tl.sum(probs * dprobs, axis=1)
                dscore = probs * (dprobs - row_dot[:, None])  # gradient of the logits (incl. B and M)
                dscore_lo = dscore.to(q.dtype)
                dk += _dot(tl.trans(dscore_lo), q, PRECISION, UPCAST)  # (N_PAD, D_PAD), times scale below
                dq = _dot(dscore_lo, k, PRECISION, UPCAST) * scale  # (BLOCK_M, D_PAD)
                _store_rows(dq_ptr, dq, batch, q_row, q_col, head, q_real, dims, head_dim,
                            stride_db, stride_dh, stride_dw, stride_dn, stride_dd)
                if single_block:
                    dscore_sum += dscore
                else:
                    _add_dscore(dscore_ptr, dscore, head, query_slots, key_slots, WINDOW, N_PAD)
            _store_rows(dk_ptr, dk * scale, batch, k_row, k_col, head, k_real, dims, head_dim,
                        stride_db, stride_dh, stride_dw, stride_dn, stride_dd)
            _store_rows(dv_ptr, dv, batch, k_row, k_col, head, k_real, dims, head_dim,
                        stride_db, stride_dh, stride_dw, stride_dn, stride_dd)
        if single_block:
            _add_dscore(dscore_ptr, dscore_sum, head, tl.arange(0, BLOCK_M), key_slots, WINDOW, N_PAD)

    @triton.jit
    def _bias_table_grad_kernel(
        dscore_ptr, dtable_ptr, stride_dt_e, stride_dt_h,
        WINDOW: tl.constexpr, N_PAD: tl.constexpr, BLOCK_E: tl.constexpr,
    ):
        """dtable[e, h] = Σ over pairs (t1, t2) with index(t1, t2) == e of dscore[h, t1, t2] (no atomics)."""
        head = tl.program_id(0)
        entries = tl.program_id(1) * BLOCK_E + tl.arange(0, BLOCK_E)
        n_entries: tl.constexpr = (2 * WINDOW - 1) * (2 * WINDOW - 1)
        cols = tl.arange(0, N_PAD)
        col_valid = cols < WINDOW * WINDOW
        col_r = cols // WINDOW
        col_c = cols % WINDOW
        acc = tl.zeros((BLOCK_E,), dtype=tl.float32)
        for t1 in range(WINDOW * WINDOW):
            ds = tl.load(dscore_ptr + head * N_PAD * N_PAD + t1 * N_PAD + cols, mask=col_valid, other=0.0)
            index = (t1 // WINDOW - col_r + WINDOW - 1) * (2 * WINDOW - 1) + (t1 % WINDOW - col_c + WINDOW - 1)
            hit = (index[None, :] == entries[:, None]) & col_valid[None, :]
            acc += tl.sum(tl.where(hit, ds[None, :], 0.0), axis=1)
        tl.store(dtable_ptr + entries * stride_dt_e + head * stride_dt_h, acc.to(dtable_ptr.dtype.element_ty),
                 mask=entries < n_entries)


def _next_pow2(n: int, minimum: int = 16) -> int:
    return max(minimum, 1 << (n - 1).bit_length())


def _dot_options(dtype: torch.dtype) -> Dict[str, object]:
    # fp32 must not drop to tf32 (fp32 tolerance 1e-5); fp16/bf16 run on tensor cores with fp32
    # accumulation. Triton's interpreter mis-computes tl.dot on bf16, so there the operands are
    # upcast (exactly) to fp32.
    upcast = dtype == torch.bfloat16 and interpreter_enabled()
    return {"PRECISION": "ieee" if (dtype == torch.float32 or upcast) else "tf32", "UPCAST": upcast}


def _query_block(n_pad: int, dtype: torch.dtype, backward: bool) -> int:
    """Query slots per tile (all N_PAD keys are always one tile): the whole window where that fits,
    else the block from :data:`QUERY_BLOCKS`.

    A 12x12 window pads to 256 slots, whose full (256, 256) score tile would need 272-320 KiB of
    shared memory for the tl.dot operands on sm_90, over the H100's 227 KiB per block. Blocks smaller
    than the window also keep registers from spilling, which fp32 ("ieee" tl.dot, no tensor cores)
    needs from 64 slots on. The table holds the largest block that compiled for sm_90 without
    register spills at head dim 64, or 16 (the smallest tl.dot block) where none was spill-free
    (tests/kernels/test_gpu_compile.py prints shared memory and spills); it is not tuned by timing.

    Example:
        >>> _query_block(64, torch.bfloat16, backward=True), _query_block(256, torch.bfloat16, backward=False)
        (64, 64)
    """
    engine = "fp32" if dtype == torch.float32 else "tensor_core"
    return QUERY_BLOCKS[(engine, "backward" if backward else "forward")].get(n_pad, n_pad)


def _launch_geometry(q: torch.Tensor, window_size: int, backward: bool, block_m: Optional[int] = None):
    batch, height, width, heads, head_dim = q.shape
    n_win_h = -(-height // window_size)
    n_win_w = -(-width // window_size)
    n_pad = _next_pow2(window_size * window_size)
    d_pad = _next_pow2(head_dim)
    block_m = block_m or _query_block(n_pad, q.dtype, backward)
    num_warps = 4 if n_pad <= 64 else 8
    return batch, height, width, heads, head_dim, n_win_h, n_win_w, n_pad, block_m, d_pad, num_warps


def _strides5(t: torch.Tensor) -> Tuple[int, ...]:
    return tuple(t.stride())


def _launch_forward(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, table: torch.Tensor, window_size: int, shift_size: int,
    scale: float, out: Optional[torch.Tensor] = None, block_m: Optional[int] = None,
) -> torch.Tensor:
    """Run the forward kernel; ``out`` (shape of q) may be given, e.g. poisoned, and ``block_m``
    (queries per program, a power of two >= 16) forced, by tests."""
    batch, height, width, heads, head_dim, n_win_h, n_win_w, n_pad, block_m, d_pad, num_warps = _launch_geometry(
        q, window_size, False, block_m
    )
    if out is None:
        out = q.new_empty(q.shape)
    if q.numel() == 0:
        return out
    grid = (batch * n_win_h * n_win_w, heads, triton.cdiv(window_size * window_size, block_m))
    _window_attention_fwd_kernel[grid](
        q, k, v, table, out,
        *_strides5(q), *_strides5(k), *_strides5(v), *_strides5(out),
        table.stride(0), table.stride(1),
        height, width, n_win_h, n_win_w, head_dim, float(scale),
        WINDOW=window_size, SHIFT=shift_size, N_PAD=n_pad, BLOCK_M=block_m, D_PAD=d_pad, **_dot_options(q.dtype),
        num_warps=num_warps,
    )
    return out


def _default_windows_per_program(total_windows: int, heads: int) -> int:
    # Enough programs to fill a GPU (~1000), while summing dscore over several windows per program
    # (when one block holds all of a window's queries) to cut the atomic traffic into the (heads, N, N) buffer.
    per_program = 1
    while per_program < 8 and total_windows * heads // (2 * per_program) >= 1024:
        per_program *= 2
    return per_program


def _launch_backward(
    grad_out: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, table: torch.Tensor,
    window_size: int, shift_size: int, scale: float,
    dq: Optional[torch.Tensor] = None, dk: Optional[torch.Tensor] = None, dv: Optional[torch.Tensor] = None,
    dtable: Optional[torch.Tensor] = None, windows_per_program: Optional[int] = None, block_m: Optional[int] = None,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run the backward kernels; outputs may be given (e.g. poisoned), and the windows per program
    and queries per block forced, by tests. dq, dk, dv must share strides."""
    batch, height, width, heads, head_dim, n_win_h, n_win_w, n_pad, block_m, d_pad, num_warps = _launch_geometry(
        q, window_size, True, block_m
    )
    dq = q.new_empty(q.shape) if dq is None else dq
    dk = q.new_empty(q.shape) if dk is None else dk
    dv = q.new_empty(q.shape) if dv is None else dv
    dtable = table.new_empty(table.shape) if dtable is None else dtable
    if not (dq.stride() == dk.stride() == dv.stride()):
        raise ValueError("dq, dk and dv must have the same strides")
    dscore = torch.zeros(heads, n_pad, n_pad, device=q.device, dtype=torch.float32)
    total_windows = batch * n_win_h * n_win_w
    if q.numel() > 0:
        per_program = windows_per_program or _default_windows_per_program(total_windows, heads)
        grid = (triton.cdiv(total_windows, per_program), heads)
        _window_attention_bwd_kernel[grid](
            q, k, v, table, grad_out, dq, dk, dv, dscore,
            *_strides5(q), *_strides5(k), *_strides5(v), *_strides5(grad_out), *_strides5(dq),
            table.stride(0), table.stride(1),
            height, width, n_win_h, n_win_w, head_dim, float(scale), total_windows,
            WINDOW=window_size, SHIFT=shift_size, N_PAD=n_pad, BLOCK_M=block_m, D_PAD=d_pad,
            WINDOWS_PER_PROGRAM=per_program, **_dot_options(q.dtype), num_warps=num_warps,
        )
    block_e = 32
    n_entries = (2 * window_size - 1) ** 2
    _bias_table_grad_kernel[(heads, triton.cdiv(n_entries, block_e))](
        dscore, dtable, dtable.stride(0), dtable.stride(1),
        WINDOW=window_size, N_PAD=n_pad, BLOCK_E=block_e, num_warps=4,
    )
    return dq, dk, dv, dtable


# ---------------------------------------------------------------------------------------------
# torch.library custom ops + autograd
# ---------------------------------------------------------------------------------------------
@torch.library.custom_op("plugattn::window_attention", mutates_args=())
def _window_attention_op(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, rel_pos_bias: torch.Tensor,
    window_size: int, shift_size: int, scale: float,
) -> torch.Tensor:
    return _launch_forward(q, k, v, rel_pos_bias, window_size, shift_size, scale)


@_window_attention_op.register_fake
def _(q, k, v, rel_pos_bias, window_size, shift_size, scale):
    return q.new_empty(q.shape)


@torch.library.custom_op("plugattn::window_attention_backward", mutates_args=())
def _window_attention_backward_op(
    grad_out: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, rel_pos_bias: torch.Tensor,
    window_size: int, shift_size: int, scale: float,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    return _launch_backward(grad_out, q, k, v, rel_pos_bias, window_size, shift_size, scale)


@_window_attention_backward_op.register_fake
def _(grad_out, q, k, v, rel_pos_bias, window_size, shift_size, scale):
    return q.new_empty(q.shape), q.new_empty(q.shape), q.new_empty(q.shape), rel_pos_bias.new_empty(rel_pos_bias.shape)


def _setup_context(ctx, inputs, output) -> None:
    q, k, v, rel_pos_bias, window_size, shift_size, scale = inputs
    ctx.save_for_backward(q, k, v, rel_pos_bias)
    ctx.window_size, ctx.shift_size, ctx.scale = window_size, shift_size, scale


def _backward(ctx, grad_out):
    q, k, v, rel_pos_bias = ctx.saved_tensors
    dq, dk, dv, dtable = _window_attention_backward_op(
        grad_out, q, k, v, rel_pos_bias, ctx.window_size, ctx.shift_size, ctx.scale
    )
    return dq, dk, dv, dtable, None, None, None


_window_attention_op.register_autograd(_backward, setup_context=_setup_context)


# ---------------------------------------------------------------------------------------------
# Public entry point
# ---------------------------------------------------------------------------------------------
def window_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    rel_pos_bias: torch.Tensor,
    window_size: int,
    shift_size: int = 0,
    scale: Optional[float] = None,
    backend: Optional[str] = None,
) -> torch.Tensor:
    """Swin (shifted) window attention on a channels-last map, fused on the Triton path.

    Args:
        q, k, v: (B, H, W, heads, head_dim), as a Swin block has them after its qkv projection
            (``qkv(x).unflatten(-1, (3, heads, head_dim))`` and index 0/1/2: strided views are fine).
            H, W need not be multiples of ``window_size`` (timm's zero padding, see module doc).
        rel_pos_bias: the ((2·window_size − 1)², heads) relative position bias table B̂.
        window_size: M, the window side (Triton: M ≤ 12, head_dim ≤ 64).
        shift_size: cyclic shift s, 0 ≤ s < M; s > 0 applies the −100 SW-MSA mask.
        scale: logit scale, default head_dim ** −0.5.
        backend: ``"auto"`` / ``"triton"`` / ``"torch"`` (default: the process setting).

    Returns:
        (B, H, W, heads, head_dim) in the dtype of q; on the Triton path contiguous.

    Example:
        >>> q = torch.randn(2, 7, 7, 3, 32)
        >>> window_attention(q, q, q, torch.zeros(169, 3), window_size=7, shift_size=3).shape
        torch.Size([2, 7, 7, 3, 32])
    """
    _check_arguments(q, k, v, rel_pos_bias, window_size, shift_size)
    scale = q.shape[-1] ** -0.5 if scale is None else float(scale)
    chosen = resolve_backend(q, backend, op="window_attention")
    if chosen == "triton":
        reason = triton_unsupported_reason(window_size, q.shape[-1])
        if reason is not None:
            if (backend or get_backend()) == "triton":
                raise RuntimeError(f"window_attention: backend='triton' does not support {reason}")
            chosen = "torch"
    if chosen == "triton":
        return _window_attention_op(q, k, v, rel_pos_bias, window_size, shift_size, scale)
    return window_attention_reference(q, k, v, rel_pos_bias, window_size, shift_size, scale)
