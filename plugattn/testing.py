"""Numerical comparison helpers used by the test-suite (and handy for users checking kernels).

Tolerances follow the project's rule, relative error ||a - b|| / ||b||: fp32 <= 1e-5,
fp16 <= 1e-3, bf16 <= 1e-2; float64 <= 1e-10. NaN or inf never passes.
"""
from __future__ import annotations

from typing import Optional

import torch

RTOL = {
    torch.float64: 1e-10,
    torch.float32: 1e-5,
    torch.float16: 1e-3,
    torch.bfloat16: 1e-2,
}


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """||actual - expected|| / ||expected|| in float64; ``inf`` if either holds NaN/inf.

    Example:
        >>> relative_error(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0]))
        0.0
    """
    a = actual.detach().to(torch.float64)
    b = expected.detach().to(torch.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: actual {tuple(a.shape)} vs expected {tuple(b.shape)}")
    if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        return float("inf")
    denom = b.norm().item()
    diff = (a - b).norm().item()
    if denom == 0.0:
        return 0.0 if diff == 0.0 else float("inf")
    return diff / denom


def assert_rel_close(
    actual: torch.Tensor,
    expected: torch.Tensor,
    dtype: Optional[torch.dtype] = None,
    what: str = "output",
    tolerance: Optional[float] = None,
) -> None:
    """Assert ``relative_error(actual, expected)`` is within the tolerance of ``dtype``
    (default: ``actual.dtype``), or within ``tolerance`` when that is larger.

    Example:
        >>> assert_rel_close(torch.ones(3), torch.ones(3))
    """
    dtype = dtype or actual.dtype
    tol = max(RTOL[dtype], tolerance or 0.0)
    err = relative_error(actual, expected)
    assert err <= tol, f"{what}: relative error {err:.3e} > {tol:.0e} for {dtype}"
