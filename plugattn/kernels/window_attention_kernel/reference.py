"""Window attention in plain PyTorch: argument checks, the relative-position index, the SW-MSA mask,
the dense bias gathered from the table, and the reference op the Triton kernels must equal.

Layout (timm's): ``qkv`` is the output of a Swin block's ``nn.Linear(C, 3C)`` on (B, H, W, C) tokens,
so its last axis is (3, heads, head_dim) flattened; the result is (B, H, W, C), ready for ``proj``.
"""
from __future__ import annotations

from typing import Dict, Optional

import torch
import torch.nn.functional as F
from einops import rearrange

MASK_VALUE = -100.0  # Swin's value for cross-region pairs (official code and timm)


def table_window(rel_pos_bias: torch.Tensor) -> int:
    """The window T a ((2T − 1)², heads) bias table was made for (0 when its row count is no odd square).

    Example:
        >>> table_window(torch.zeros(169, 3))
        7
    """
    rows = rel_pos_bias.shape[0] if rel_pos_bias.dim() == 2 else 0
    side = int(round(rows ** 0.5))
    return (side + 1) // 2 if side * side == rows and side % 2 == 1 else 0


def check_arguments(qkv: torch.Tensor, rel_pos_bias: torch.Tensor, window_size: int, shift_size: int) -> None:
    """Raise ``ValueError`` naming the argument for anything the op cannot take.

    Example:
        >>> check_arguments(torch.zeros(1, 7, 7, 3 * 64), torch.zeros(169, 2), 7, 3)
    """
    if isinstance(window_size, bool) or not isinstance(window_size, int) or window_size < 1:
        raise ValueError(f"window_size must be an integer >= 1, got {window_size!r}")
    if isinstance(shift_size, bool) or not isinstance(shift_size, int) or not 0 <= shift_size < window_size:
        raise ValueError(f"shift_size must be an integer in [0, window_size={window_size}), got {shift_size!r}")
    if qkv.dim() != 4:
        raise ValueError(f"qkv must have shape (B, H, W, 3 * C), got shape {tuple(qkv.shape)}")
    if not qkv.is_floating_point():
        raise ValueError(f"qkv must be a floating-point tensor, got dtype {qkv.dtype}")
    if rel_pos_bias.dim() != 2 or table_window(rel_pos_bias) < window_size:
        raise ValueError(
            f"rel_pos_bias must be a ((2T-1)**2, heads) table with T >= window_size={window_size} "
            f"(e.g. {((2 * window_size - 1) ** 2)} rows), got shape {tuple(rel_pos_bias.shape)}"
        )
    heads = rel_pos_bias.shape[1]
    if heads < 1 or qkv.shape[-1] % (3 * heads):
        raise ValueError(
            f"qkv's last axis must be 3 * heads * head_dim with heads={heads} (the table's columns), "
            f"got {qkv.shape[-1]}"
        )
    if rel_pos_bias.device != qkv.device:
        raise ValueError(f"rel_pos_bias must be on qkv's device {qkv.device}, got {rel_pos_bias.device}")


_CACHE: Dict[tuple, torch.Tensor] = {}


def cached(key: tuple, build):
    """``build()``, kept per ``key`` in eager mode."""
    # Eager calls reuse the index/mask (as timm keeps them in buffers); under torch.compile the
    # builders are traced instead, so the compiled graph needs no Python-side state.
    if torch.compiler.is_compiling():
        return build()
    if key not in _CACHE:
        _CACHE[key] = build()
    return _CACHE[key]


def relative_position_index(
    window_size: int, device: torch.device = torch.device("cpu"), table_window: Optional[int] = None
) -> torch.Tensor:
    """(N, N) long index into the ((2T−1)², heads) bias table of window T (default T = M), N = M² (Swin Sec. 3.2).

    Token t sits at (t // M, t % M); the pair (t1, t2) uses row
    (r1 − r2 + T − 1)·(2T − 1) + (c1 − c2 + T − 1): a window M < T uses the table's central part.

    Example:
        >>> relative_position_index(2).tolist()
        [[4, 3, 1, 0], [5, 4, 2, 1], [7, 6, 4, 3], [8, 7, 5, 4]]
    """
    big = window_size if table_window is None else table_window

    def build() -> torch.Tensor:
        rows, cols = torch.meshgrid(
            torch.arange(window_size, device=device), torch.arange(window_size, device=device), indexing="ij"
        )
        rows, cols = rows.flatten(), cols.flatten()  # (N,)
        d_row = rows[:, None] - rows[None, :] + big - 1  # (N, N)
        d_col = cols[:, None] - cols[None, :] + big - 1
        return d_row * (2 * big - 1) + d_col

    return cached(("index", window_size, big, str(device)), build)


def window_bias(rel_pos_bias: torch.Tensor, window_size: int) -> torch.Tensor:
    """The dense (heads, N, N) relative position bias B of Eq. (4), gathered from the table once.

    Example:
        >>> window_bias(torch.randn(9, 2), 2).shape
        torch.Size([2, 4, 4])
    """
    index = relative_position_index(window_size, rel_pos_bias.device, table_window(rel_pos_bias))
    return rearrange(rel_pos_bias[index], "n1 n2 h -> h n1 n2")


def shifted_window_mask(
    padded_h: int, padded_w: int, window_size: int, shift_size: int, device: torch.device = torch.device("cpu")
) -> torch.Tensor:
    """(nWh·nWw, N, N) additive SW-MSA mask on the padded map: −100 across regions, 0 within.

    The regions are the 3×3 slices ``[0, Hp−M), [Hp−M, Hp−s), [Hp−s, Hp)`` (same for the width).

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

    return cached(("mask", padded_h, padded_w, window_size, shift_size, str(device)), build)


def window_attention_reference(
    qkv: torch.Tensor,
    rel_pos_bias: torch.Tensor,
    window_size: int,
    shift_size: int = 0,
    scale: Optional[float] = None,
) -> torch.Tensor:
    """Swin (S)W-MSA in separate PyTorch passes: shift, pad, partition, q·kᵀ·scale + B + M,
    softmax, ·v, reverse partition, crop, reverse shift. Computes in the dtype of qkv.

    qkv: (B, H, W, 3·heads·head_dim) in timm's (3, heads, head_dim) order; rel_pos_bias: ((2T−1)², heads)
    with T ≥ window_size. Returns (B, H, W, heads·head_dim).

    Example:
        >>> qkv = torch.randn(1, 5, 6, 3 * 2 * 4)
        >>> window_attention_reference(qkv, torch.zeros(9, 2), 2, 1).shape
        torch.Size([1, 5, 6, 8])
    """
    check_arguments(qkv, rel_pos_bias, window_size, shift_size)
    heads = rel_pos_bias.shape[1]
    _, height, width, _ = qkv.shape
    head_dim = qkv.shape[-1] // (3 * heads)
    scale = head_dim ** -0.5 if scale is None else scale
    m = window_size
    pad_h, pad_w = (-height) % m, (-width) % m
    if shift_size:  # timm order: roll the real map, then pad
        qkv = torch.roll(qkv, shifts=(-shift_size, -shift_size), dims=(1, 2))
    qkv = F.pad(qkv, (0, 0, 0, pad_w, 0, pad_h))  # (B, Hp, Wp, 3C): padded tokens have q = k = v = 0
    q, k, v = rearrange(qkv, "b (nh m1) (nw m2) (three n d) -> three b (nh nw) n (m1 m2) d",
                        m1=m, m2=m, three=3, n=heads)  # each (B, nW, heads, N, d)
    attn = (q * scale) @ k.transpose(-1, -2)  # (B, nW, heads, N, N)
    attn = attn + window_bias(rel_pos_bias, m).to(attn.dtype)
    if shift_size:
        mask = shifted_window_mask(height + pad_h, width + pad_w, m, shift_size, qkv.device)  # (nW, N, N)
        attn = attn + mask[:, None].to(attn.dtype)
    out = attn.softmax(dim=-1) @ v  # (B, nW, heads, N, d)
    out = rearrange(out, "b (nh nw) n (m1 m2) d -> b (nh m1) (nw m2) (n d)", nh=(height + pad_h) // m, m1=m, m2=m)
    out = out[:, :height, :width]
    if shift_size:
        out = torch.roll(out, shifts=(shift_size, shift_size), dims=(1, 2))
    return out
