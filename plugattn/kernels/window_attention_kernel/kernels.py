"""The @triton.jit kernels of window attention (forward, backward) on the packed qkv tensor.

A program's window slots are token numbers t = row·M + col of one M×M window; their source pixels
come from index arithmetic (cyclic shift + window partition + padding: nothing is copied). q, k and v
are the three channel ranges [0, C), [C, 2C), [2C, 3C) of the one (B, H, W, 3C) qkv tensor (head h at
h·d + [0, d) inside each), and the backward writes one dqkv tensor of the same layout.

Keys are never blocked: all of a window's keys are on chip, in one power-of-two piece of
``KEYS_MAIN`` slots and, where that saves work, a second piece of ``KEYS_TAIL`` slots (so 144 keys
of a 12×12 window are 128 + 16 slots rather than 256); every softmax row is complete, no online
softmax. The logits are in base 2: scores = q·kᵀ·(scale·log₂e) + tile, where the launcher's dense
bias tile already holds (B + M)·log₂e, 0 for padding query rows and −inf for padding key slots.
"""
from __future__ import annotations

from .._common import tl, triton


@triton.jit
def _dot(a, b, PRECISION: tl.constexpr, UPCAST: tl.constexpr):
    """a @ b with fp32 accumulation; UPCAST only under the interpreter, whose bf16 tl.dot is wrong
    (the operands are exact bf16 values, so fp32 "ieee" gives what bf16 tensor cores give)."""
    if UPCAST:
        a = a.to(tl.float32)
        b = b.to(tl.float32)
    return tl.dot(a, b, input_precision=PRECISION)


@triton.jit
def _slot_tokens(slots, batch, window, height, width, n_win_w, window_exists,
                 stride_b, stride_h, stride_w, WINDOW: tl.constexpr, SHIFT: tl.constexpr):
    """Window slots -> (element offset of their source pixel, slot is a real token of the map)."""
    row = (window // n_win_w) * WINDOW + slots // WINDOW  # in the shifted, padded frame
    col = (window % n_win_w) * WINDOW + slots % WINDOW
    real = (slots < WINDOW * WINDOW) & (row < height) & (col < width) & window_exists
    # timm order: the real map is rolled by -SHIFT, so shifted row r reads source row (r + SHIFT) mod H
    offsets = batch * stride_b + ((row + SHIFT) % height) * stride_h + ((col + SHIFT) % width) * stride_w
    return offsets, real


@triton.jit
def _load_part(ptr, tokens, real, channel0, dims, head_dim, stride_c):
    """(len(tokens), D_PAD) tile of channels channel0 + [0, head_dim) at the tokens; 0 elsewhere."""
    mask = real[:, None] & (dims < head_dim)[None, :]
    return tl.load(ptr + tokens[:, None] + (channel0 + dims)[None, :] * stride_c, mask=mask, other=0.0)


@triton.jit
def _store_part(ptr, tile, tokens, real, channel0, dims, head_dim, stride_c):
    """Inverse of _load_part: the reverse partition and reverse shift are this scatter."""
    mask = real[:, None] & (dims < head_dim)[None, :]
    tl.store(ptr + tokens[:, None] + (channel0 + dims)[None, :] * stride_c, tile.to(ptr.dtype.element_ty), mask=mask)


@triton.jit
def _load_keys(qkv_ptr, key_slots, batch, window, height, width, n_win_w, window_exists,
               stride_b, stride_h, stride_w, stride_c, k_channel, v_channel, dims, head_dim,
               WINDOW: tl.constexpr, SHIFT: tl.constexpr):
    """k and v, (len(key_slots), D_PAD) each, of one window's key slots, and which tokens they are."""
    tokens, real = _slot_tokens(key_slots, batch, window, height, width, n_win_w, window_exists,
                                stride_b, stride_h, stride_w, WINDOW, SHIFT)
    k = _load_part(qkv_ptr, tokens, real, k_channel, dims, head_dim, stride_c)
    v = _load_part(qkv_ptr, tokens, real, v_channel, dims, head_dim, stride_c)
    return tokens, real, k, v


@triton.jit
def _tile_base(window, head, heads, n_win_h, n_win_w, QUERY_SLOTS: tl.constexpr, KEY_SLOTS: tl.constexpr,
               SHIFT: tl.constexpr):
    """Offset of this (window kind, head) in the (kinds, heads, QUERY_SLOTS, KEY_SLOTS) bias tile.

    Shifted maps have four kinds of window: only the last window row / column straddles the
    cyclic-shift seam, so only they mask (kind = 2·last_row + last_col)."""
    kind = 0
    if SHIFT > 0:
        kind = ((window // n_win_w) == n_win_h - 1).to(tl.int32) * 2 + ((window % n_win_w) == n_win_w - 1).to(tl.int32)
    return (kind * heads + head) * (QUERY_SLOTS * KEY_SLOTS)


@triton.jit
def _scores(q, k, tile_ptr, query_slots, key_slots, scale_log2, KEY_SLOTS: tl.constexpr,
            PRECISION: tl.constexpr, UPCAST: tl.constexpr):
    """(queries, keys) base-2 logits q·kᵀ·scale·log₂e + (B + M)·log₂e, fp32."""
    tile = tl.load(tile_ptr + query_slots[:, None] * KEY_SLOTS + key_slots[None, :])
    return _dot(q, tl.trans(k), PRECISION, UPCAST) * scale_log2 + tile


@triton.jit
def _add_dbias(dbias_ptr, dscore, query_slots, key_slots, KEY_SLOTS: tl.constexpr,
               ATOMIC: tl.constexpr, RELAXED: tl.constexpr):
    """Add a (queries, keys) block of dS into the dB̃ buffer: read-modify-write of the program's own
    slice, or (ATOMIC, a slice all programs share) one atomic per element, relaxed where triton can."""
    ptrs = dbias_ptr + query_slots[:, None] * KEY_SLOTS + key_slots[None, :]
    if not ATOMIC:
        tl.store(ptrs, tl.load(ptrs) + dscore)
    elif RELAXED:
        tl.atomic_add(ptrs, dscore, sem="relaxed")
    else:
        tl.atomic_add(ptrs, dscore)


@triton.jit
def window_attention_fwd_kernel(
    qkv_ptr, tile_ptr, out_ptr,
    stride_b, stride_h, stride_w, stride_c,
    stride_ob, stride_oh, stride_ow, stride_oc,
    height, width, n_win_h, n_win_w, heads, channels, head_dim, scale_log2,
    WINDOW: tl.constexpr, SHIFT: tl.constexpr, BLOCK_M: tl.constexpr, QUERY_SLOTS: tl.constexpr,
    KEYS_MAIN: tl.constexpr, KEYS_TAIL: tl.constexpr, D_PAD: tl.constexpr,
    PRECISION: tl.constexpr, UPCAST: tl.constexpr,
):
    """One program: BLOCK_M query slots of one (window, head) against all of the window's keys."""
    pid_window = tl.program_id(0)  # over B * nWh * nWw
    head = tl.program_id(1)
    windows_per_image = n_win_h * n_win_w
    batch = (pid_window // windows_per_image).to(tl.int64)
    window = pid_window % windows_per_image
    key_slots: tl.constexpr = KEYS_MAIN + KEYS_TAIL
    dims = tl.arange(0, D_PAD)
    query_slots = tl.program_id(2) * BLOCK_M + tl.arange(0, BLOCK_M)
    tile = tile_ptr + _tile_base(window, head, heads, n_win_h, n_win_w, QUERY_SLOTS, key_slots, SHIFT)
    q_tok, q_real = _slot_tokens(query_slots, batch, window, height, width, n_win_w, True,
                                 stride_b, stride_h, stride_w, WINDOW, SHIFT)
    # padding tokens load q = k = v = 0 (timm pads after the qkv projection of a bias-free map)
    q = _load_part(qkv_ptr, q_tok, q_real, head * head_dim, dims, head_dim, stride_c)  # (BLOCK_M, D_PAD)

    keys = tl.arange(0, KEYS_MAIN)
    k_channel = channels + head * head_dim
    v_channel = 2 * channels + head * head_dim
    k_tok, k_real, k, v = _load_keys(qkv_ptr, keys, batch, window, height, width, n_win_w, True, stride_b, stride_h,
                            stride_w, stride_c, k_channel, v_channel, dims, head_dim, WINDOW, SHIFT)  # (KEYS_MAIN, D_PAD)
    scores = _scores(q, k, tile, query_slots, keys, scale_log2, key_slots, PRECISION, UPCAST)  # (BLOCK_M, KEYS_MAIN)
    row_max = tl.max(scores, axis=1)
    if KEYS_TAIL > 0:
        keys_t = KEYS_MAIN + tl.arange(0, KEYS_TAIL)
        kt_tok, kt_real, k_t, v_t = _load_keys(qkv_ptr, keys_t, batch, window, height, width, n_win_w, True, stride_b,
                                    stride_h, stride_w, stride_c, k_channel, v_channel, dims, head_dim, WINDOW, SHIFT)
        scores_t = _scores(q, k_t, tile, query_slots, keys_t, scale_log2, key_slots, PRECISION, UPCAST)
        row_max = tl.maximum(row_max, tl.max(scores_t, axis=1))
    probs = tl.exp2(scores - row_max[:, None])  # unnormalised; the division comes after ·v
    row_sum = tl.sum(probs, axis=1)
    out = _dot(probs.to(v.dtype), v, PRECISION, UPCAST)  # (BLOCK_M, D_PAD) fp32
    if KEYS_TAIL > 0:
        probs_t = tl.exp2(scores_t - row_max[:, None])
        row_sum += tl.sum(probs_t, axis=1)
        out += _dot(probs_t.to(v_t.dtype), v_t, PRECISION, UPCAST)
    out = out / row_sum[:, None]
    o_tok, o_real = _slot_tokens(query_slots, batch, window, height, width, n_win_w, True,
                            stride_ob, stride_oh, stride_ow, WINDOW, SHIFT)
    _store_part(out_ptr, out, o_tok, q_real, head * head_dim, dims, head_dim, stride_oc)


@triton.jit
def window_attention_bwd_kernel(
    qkv_ptr, tile_ptr, dout_ptr, dqkv_ptr, dbias_ptr,
    stride_b, stride_h, stride_w, stride_c,
    stride_gb, stride_gh, stride_gw, stride_gc,
    stride_db, stride_dh, stride_dw, stride_dc,
    height, width, n_win_h, n_win_w, heads, channels, head_dim, scale, scale_log2, total_windows,
    WINDOW: tl.constexpr, SHIFT: tl.constexpr, BLOCK_M: tl.constexpr, QUERY_SLOTS: tl.constexpr,
    KEYS_MAIN: tl.constexpr, KEYS_TAIL: tl.constexpr, D_PAD: tl.constexpr, WINDOWS_PER_PROGRAM: tl.constexpr,
    PRIVATE_SLICES: tl.constexpr, RELAXED: tl.constexpr, PRECISION: tl.constexpr, UPCAST: tl.constexpr,
):
    """One program: WINDOWS_PER_PROGRAM consecutive windows of one head. Per window, k, v, dk, dv
    stay on chip while the query blocks go by (recomputing P); dq is complete per block (all keys are
    on chip) and stored at once. dS = P∘(dP − rowsum(P∘dP)) also feeds dB̃, the (QUERY_SLOTS,
    KEY_SLOTS) bias gradient: summed in registers over the program's windows when one block holds
    every query, else added block by block into the program's own slice of the buffer. With
    PRIVATE_SLICES every program owns a slice (the launcher sums them in a fixed order); without (only
    planned for one query block, outside deterministic mode) the programs' sums meet in one slice
    through relaxed atomics."""
    pid = tl.program_id(0)
    head = tl.program_id(1)
    windows_per_image = n_win_h * n_win_w
    key_slots: tl.constexpr = KEYS_MAIN + KEYS_TAIL
    single_block: tl.constexpr = BLOCK_M == QUERY_SLOTS
    n_blocks: tl.constexpr = QUERY_SLOTS // BLOCK_M
    dims = tl.arange(0, D_PAD)
    keys = tl.arange(0, KEYS_MAIN)
    q_channel = head * head_dim
    k_channel = channels + head * head_dim
    v_channel = 2 * channels + head * head_dim
    slice_index = pid if PRIVATE_SLICES else 0
    dbias = dbias_ptr + (slice_index * heads + head) * (QUERY_SLOTS * key_slots)
    dbias_sum = tl.zeros((BLOCK_M, KEYS_MAIN), dtype=tl.float32)
    if KEYS_TAIL > 0:
        keys_t = KEYS_MAIN + tl.arange(0, KEYS_TAIL)
        dbias_sum_t = tl.zeros((BLOCK_M, KEYS_TAIL), dtype=tl.float32)
    for step in range(WINDOWS_PER_PROGRAM):
        global_window = pid * WINDOWS_PER_PROGRAM + step
        window_exists = global_window < total_windows
        batch = (global_window // windows_per_image).to(tl.int64)
        window = global_window % windows_per_image
        tile = tile_ptr + _tile_base(window, head, heads, n_win_h, n_win_w, QUERY_SLOTS, key_slots, SHIFT)
        k_tok, k_real, k, v = _load_keys(qkv_ptr, keys, batch, window, height, width, n_win_w, window_exists,
                                     stride_b, stride_h, stride_w, stride_c, k_channel, v_channel, dims, head_dim,
                                     WINDOW, SHIFT)  # (KEYS_MAIN, D_PAD)
        dk = tl.zeros((KEYS_MAIN, D_PAD), dtype=tl.float32)
        dv = tl.zeros((KEYS_MAIN, D_PAD), dtype=tl.float32)
        if KEYS_TAIL > 0:
            kt_tok, kt_real, k_t, v_t = _load_keys(qkv_ptr, keys_t, batch, window, height, width, n_win_w, window_exists,
                                              stride_b, stride_h, stride_w, stride_c, k_channel, v_channel, dims,
                                              head_dim, WINDOW, SHIFT)  # (KEYS_TAIL, D_PAD)
            dk_t = tl.zeros((KEYS_TAIL, D_PAD), dtype=tl.float32)
            dv_t = tl.zeros((KEYS_TAIL, D_PAD), dtype=tl.float32)
        for block in range(n_blocks):
            query_slots = block * BLOCK_M + tl.arange(0, BLOCK_M)
            q_tok, q_real = _slot_tokens(query_slots, batch, window, height, width, n_win_w, window_exists,
                                         stride_b, stride_h, stride_w, WINDOW, SHIFT)
            g_tok, g_real = _slot_tokens(query_slots, batch, window, height, width, n_win_w, window_exists,
                                    stride_gb, stride_gh, stride_gw, WINDOW, SHIFT)
            q = _load_part(qkv_ptr, q_tok, q_real, q_channel, dims, head_dim, stride_c)  # (BLOCK_M, D_PAD)
            # rows of padding slots / missing windows have dout = 0, hence dS = 0 there
            dout = _load_part(dout_ptr, g_tok, q_real, q_channel, dims, head_dim, stride_gc).to(v.dtype)

            scores = _scores(q, k, tile, query_slots, keys, scale_log2, key_slots, PRECISION, UPCAST)
            row_max = tl.max(scores, axis=1)
            if KEYS_TAIL > 0:
                scores_t = _scores(q, k_t, tile, query_slots, keys_t, scale_log2, key_slots, PRECISION, UPCAST)
                row_max = tl.maximum(row_max, tl.max(scores_t, axis=1))
            probs = tl.exp2(scores - row_max[:, None])
            row_sum = tl.sum(probs, axis=1)
            if KEYS_TAIL > 0:
                probs_t = tl.exp2(scores_t - row_max[:, None])
                row_sum += tl.sum(probs_t, axis=1)
            probs = probs / row_sum[:, None]
            dv += _dot(tl.trans(probs.to(v.dtype)), dout, PRECISION, UPCAST)  # (KEYS_MAIN, D_PAD)
            dprobs = _dot(dout, tl.trans(v), PRECISION, UPCAST)  # (BLOCK_M, KEYS_MAIN)
            row_dot = tl.sum(probs * dprobs, axis=1)
            if KEYS_TAIL > 0:
                probs_t = probs_t / row_sum[:, None]
                dv_t += _dot(tl.trans(probs_t.to(v.dtype)), dout, PRECISION, UPCAST)
                dprobs_t = _dot(dout, tl.trans(v_t), PRECISION, UPCAST)
                row_dot += tl.sum(probs_t * dprobs_t, axis=1)
            dscore = probs * (dprobs - row_dot[:, None])  # gradient of the natural logits (incl. B and M)
            dk += _dot(tl.trans(dscore.to(q.dtype)), q, PRECISION, UPCAST)  # times scale at the store
            dq = _dot(dscore.to(q.dtype), k, PRECISION, UPCAST)  # (BLOCK_M, D_PAD)
            if KEYS_TAIL > 0:
                dscore_t = probs_t * (dprobs_t - row_dot[:, None])
                dk_t += _dot(tl.trans(dscore_t.to(q.dtype)), q, PRECISION, UPCAST)
                dq += _dot(dscore_t.to(q.dtype), k_t, PRECISION, UPCAST)
            d_tok, d_real = _slot_tokens(query_slots, batch, window, height, width, n_win_w, window_exists,
                                    stride_db, stride_dh, stride_dw, WINDOW, SHIFT)
            _store_part(dqkv_ptr, dq * scale, d_tok, q_real, q_channel, dims, head_dim, stride_dc)
            if single_block:
                dbias_sum += dscore
                if KEYS_TAIL > 0:
                    dbias_sum_t += dscore_t
            else:
                # (the planner gives several query blocks PRIVATE_SLICES: a read-modify-write of our own)
                _add_dbias(dbias, dscore, query_slots, keys, key_slots, False, RELAXED)
                if KEYS_TAIL > 0:
                    _add_dbias(dbias, dscore_t, query_slots, keys_t, key_slots, False, RELAXED)
                tl.debug_barrier()  # this program's next window reads what every thread just wrote
        dk_tok, dk_real = _slot_tokens(keys, batch, window, height, width, n_win_w, window_exists,
                                 stride_db, stride_dh, stride_dw, WINDOW, SHIFT)
        _store_part(dqkv_ptr, dk * scale, dk_tok, k_real, k_channel, dims, head_dim, stride_dc)
        _store_part(dqkv_ptr, dv, dk_tok, k_real, v_channel, dims, head_dim, stride_dc)
        if KEYS_TAIL > 0:
            dkt_tok, dkt_real = _slot_tokens(keys_t, batch, window, height, width, n_win_w, window_exists,
                                      stride_db, stride_dh, stride_dw, WINDOW, SHIFT)
            _store_part(dqkv_ptr, dk_t * scale, dkt_tok, kt_real, k_channel, dims, head_dim, stride_dc)
            _store_part(dqkv_ptr, dv_t, dkt_tok, kt_real, v_channel, dims, head_dim, stride_dc)
    if single_block:
        rows = tl.arange(0, BLOCK_M)
        if PRIVATE_SLICES:  # the program's own slice, written once
            tl.store(dbias + rows[:, None] * key_slots + keys[None, :], dbias_sum)
            if KEYS_TAIL > 0:
                tl.store(dbias + rows[:, None] * key_slots + keys_t[None, :], dbias_sum_t)
        else:
            _add_dbias(dbias, dbias_sum, rows, keys, key_slots, True, RELAXED)
            if KEYS_TAIL > 0:
                _add_dbias(dbias, dbias_sum_t, rows, keys_t, key_slots, True, RELAXED)
