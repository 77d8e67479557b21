"""Numerical comparison helpers used by the test-suite (and handy for users checking kernels).

Tolerances follow the project's rule, relative error ||a - b|| / ||b||: fp32 <= 1e-5,
fp16 <= 1e-3, bf16 <= 1e-2; float64 <= 1e-10. NaN or inf never passes.

A reduction that can cancel (a weight gradient summing N·C·H·W products of both signs) is held to
the same tolerance relative to the sum of the *absolute values* of its terms,
||a - b|| <= rtol · ||Σ|terms|||: the classic error bound of floating-point summation
(|fl(Σt) - Σt| <= c·n·eps·Σ|t|), which any correct implementation in the dtype meets, PyTorch's own
included. In relative terms the tolerance is scaled by the sum's condition number
||Σ|terms||| / ||Σ terms||, and is the plain tolerance when nothing cancels
(:func:`assert_sum_close`).
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


def sum_condition(expected: torch.Tensor, abs_terms: torch.Tensor) -> float:
    """Condition number ||abs_terms|| / ||expected|| of a sum whose terms' absolute values add up to
    ``abs_terms`` (elementwise); 1 when nothing cancels, ``inf`` when the sum is exactly 0.

    Example:
        >>> sum_condition(torch.tensor([1.0 - 0.99]), torch.tensor([1.0 + 0.99]))  # doctest: +ELLIPSIS
        199.0...
    """
    b = expected.detach().to(torch.float64)
    t = abs_terms.detach().to(torch.float64)
    if b.shape != t.shape:
        raise ValueError(f"shapes differ: expected {tuple(b.shape)} vs abs_terms {tuple(t.shape)}")
    denom = b.norm().item()
    return t.norm().item() / denom if denom else float("inf")


def assert_sum_close(
    actual: torch.Tensor,
    expected: torch.Tensor,
    abs_terms: torch.Tensor,
    dtype: Optional[torch.dtype] = None,
    what: str = "sum",
) -> None:
    """Assert a sum that may cancel is as accurate as its conditioning allows:
    ``||actual - expected|| <= RTOL[dtype] · max(||expected||, ||abs_terms||)``.

    ``expected`` is the exact (float64) sum and ``abs_terms`` the exact sum of the absolute values of
    its terms, elementwise (so ``abs_terms >= |expected|``). NaN or inf never passes.

    Example:
        >>> terms = torch.tensor([1.0, -0.99, 2e-8], dtype=torch.float64)
        >>> assert_sum_close(terms.float().sum(), terms.sum(), terms.abs().sum(), dtype=torch.float32)
    """
    dtype = dtype or actual.dtype
    a = actual.detach().to(torch.float64)
    b = expected.detach().to(torch.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: actual {tuple(a.shape)} vs expected {tuple(b.shape)}")
    condition = sum_condition(b, abs_terms)
    finite = bool(torch.isfinite(a).all() and torch.isfinite(b).all() and torch.isfinite(abs_terms).all())
    error = (a - b).norm().item() if finite else float("inf")
    bound = RTOL[dtype] * max(b.norm().item(), abs_terms.detach().to(torch.float64).norm().item())
    assert error <= bound, (
        f"{what}: error {error:.3e} > {bound:.3e} = {RTOL[dtype]:.0e} x max(||sum||, ||sum of |terms|||) "
        f"for {dtype} (relative error {relative_error(a, b):.3e}, condition {condition:.1f})"
    )
