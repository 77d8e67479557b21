"""Argument checks shared by the backbones; each raises ``ValueError`` naming the argument, the value given
and what is allowed."""
from __future__ import annotations

from typing import Sequence

from ..._validate import check_int, check_positive_float


def check_common_args(num_classes: int, in_chans: int, width_mult: float = 1.0, dropout: float = 0.0) -> None:
    """Raise ``ValueError`` for a bad class count, input-channel count, width multiplier or dropout rate.

    Example:
        >>> check_common_args(1000, 3, 1.0, 0.2)
    """
    check_int("num_classes", num_classes, minimum=0)
    check_int("in_chans", in_chans, minimum=1)
    check_positive_float("width_mult", width_mult)
    check_probability("dropout", dropout)


def check_probability(name: str, value: object) -> float:
    """Return ``value`` if it is a number in [0, 1), else raise ``ValueError`` naming ``name``.

    Example:
        >>> check_probability("drop_path_rate", 0.2)
        0.2
    """
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= value < 1.0
    if not ok:
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
    return float(value)


# a rate in [0, 1) (stochastic depth, dropout): the same rule, under the name the transformer and MLP files use
check_rate = check_probability


def check_heads(dim: int, num_heads: int) -> None:
    """``ValueError`` unless ``num_heads`` >= 1 divides ``dim``.

    Example:
        >>> check_heads(192, 3)
    """
    check_int("dim", dim)
    check_int("num_heads", num_heads)
    if dim % num_heads:
        raise ValueError(f"num_heads must divide dim={dim}, got num_heads={num_heads}")


def check_patch_grid_args(img_size: int, patch_size: int, in_chans: int, depth: int, num_classes: int,
                          drop_path_rate: float) -> int:
    """Check the arguments of a single-grid patch-token model (ViT, MLP-Mixer, gMLP, GFNet); returns the
    grid side ``img_size // patch_size``.

    Example:
        >>> check_patch_grid_args(224, 16, 3, 12, 1000, 0.1)
        14
    """
    for name, value in (("img_size", img_size), ("patch_size", patch_size), ("in_chans", in_chans), ("depth", depth)):
        check_int(name, value)
    check_int("num_classes", num_classes, minimum=0)
    check_rate("drop_path_rate", drop_path_rate)
    if img_size % patch_size:
        raise ValueError(f"patch_size must divide img_size={img_size}, got patch_size={patch_size}")
    return img_size // patch_size


def check_per_stage(num_stages: int, **per_stage: Sequence) -> None:
    """``ValueError`` unless every per-stage list (dims, depths, heads, ...) has ``num_stages`` entries,
    naming all of them and what was given.

    Example:
        >>> check_per_stage(2, dims=(8, 16), depths=(1, 1))
    """
    if any(len(values) != num_stages for values in per_stage.values()):
        given = ", ".join(f"{name}={list(values)}" for name, values in per_stage.items())
        raise ValueError(f"{', '.join(per_stage)} need {num_stages} entries (one per stage), got {given}")


def check_block_args(in_channels: int, out_channels: int, stride: int) -> None:
    """Raise ``ValueError`` unless the widths are positive ints and the stride is 1 or 2.

    Example:
        >>> check_block_args(16, 24, 2)
    """
    check_int("in_channels", in_channels)
    check_int("out_channels", out_channels)
    if stride not in (1, 2):
        raise ValueError(f"stride must be 1 or 2, got {stride!r}")
