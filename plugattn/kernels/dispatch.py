"""Choosing between the Triton kernels and the PyTorch reference code.

``backend`` is one of:

* ``"auto"``  - Triton when the tensor is on CUDA, triton imports and the dtype is fp32/fp16/bf16;
  PyTorch otherwise.
* ``"triton"`` - forced; raises a clear ``RuntimeError`` where Triton cannot run. Under
  ``TRITON_INTERPRET=1`` (set before triton is first imported) CPU tensors run the real Triton
  code in Triton's interpreter, which is how CI tests the kernels without a GPU.
* ``"torch"`` - the pure-PyTorch reference.

The process-wide default comes from the ``PLUGATTN_BACKEND`` environment variable (``auto`` when
unset) and can be changed with :func:`set_backend` or temporarily with :func:`use_backend`.
"""
from __future__ import annotations

import contextlib
import os
from typing import Iterator, Optional

import torch

from .._validate import check_choice

BACKENDS = ("auto", "triton", "torch")
TRITON_DTYPES = (torch.float32, torch.float16, torch.bfloat16)

_default_backend: Optional[str] = None  # None: read PLUGATTN_BACKEND on first use


_triton_importable: Optional[bool] = None  # cached by hand: torch.compile warns on lru_cache


def triton_available() -> bool:
    """Whether ``import triton`` works in this process.

    Example:
        >>> isinstance(triton_available(), bool)
        True
    """
    global _triton_importable
    if _triton_importable is None:
        try:
            import triton  # noqa: F401
            import triton.language  # noqa: F401

            _triton_importable = True
        except Exception:  # ImportError, or a broken install raising something else
            _triton_importable = False
    return _triton_importable


def interpreter_enabled() -> bool:
    """Whether Triton's CPU interpreter is switched on (``TRITON_INTERPRET=1``).

    Example:
        >>> isinstance(interpreter_enabled(), bool)
        True
    """
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def get_backend() -> str:
    """The process-wide default backend.

    Example:
        >>> get_backend() in BACKENDS
        True
    """
    global _default_backend
    if _default_backend is None:
        from_env = os.environ.get("PLUGATTN_BACKEND", "auto").strip().lower() or "auto"
        _default_backend = check_choice("PLUGATTN_BACKEND", from_env, BACKENDS)
    return _default_backend


def set_backend(backend: str) -> None:
    """Set the process-wide default backend.

    Example:
        >>> set_backend("torch"); get_backend()
        'torch'
        >>> set_backend("auto")
    """
    global _default_backend
    _default_backend = check_choice("backend", backend, BACKENDS)


@contextlib.contextmanager
def use_backend(backend: str) -> Iterator[None]:
    """Context manager that sets the default backend and restores the previous one on exit.

    Example:
        >>> with use_backend("torch"):
        ...     get_backend()
        'torch'
    """
    previous = get_backend()
    set_backend(backend)
    try:
        yield
    finally:
        set_backend(previous)


def resolve_backend(x: torch.Tensor, backend: Optional[str] = None, op: str = "op") -> str:
    """Decide which implementation runs ``op`` on ``x``: returns ``"triton"`` or ``"torch"``.

    ``backend=None`` uses the process default. Forcing ``"triton"`` where it cannot run raises
    ``RuntimeError`` saying why.

    Example:
        >>> resolve_backend(torch.ones(2), "torch")
        'torch'
    """
    backend = get_backend() if backend is None else check_choice("backend", backend, BACKENDS)
    if backend == "torch":
        return "torch"
    dtype_ok = x.dtype in TRITON_DTYPES
    device_ok = x.is_cuda or (x.device.type == "cpu" and interpreter_enabled())
    if backend == "auto":
        return "triton" if (x.is_cuda and dtype_ok and triton_available()) else "torch"
    # backend == "triton": explain exactly what stands in the way
    if not triton_available():
        raise RuntimeError(f"{op}: backend='triton' but triton is not installed (pip install 'plugattn[triton]')")
    if not dtype_ok:
        allowed = ", ".join(str(d).replace("torch.", "") for d in TRITON_DTYPES)
        raise RuntimeError(f"{op}: backend='triton' supports dtypes {allowed}, got {str(x.dtype).replace('torch.', '')}")
    if not device_ok:
        raise RuntimeError(
            f"{op}: backend='triton' needs a CUDA tensor (or TRITON_INTERPRET=1 for CPU tensors), "
            f"got a tensor on {x.device}"
        )
    return "triton"
