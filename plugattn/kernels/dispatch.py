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
from typing import Dict, Iterator, Optional

import torch

from .._validate import check_choice

BACKENDS = ("auto", "triton", "torch")
TRITON_DTYPES = (torch.float32, torch.float16, torch.bfloat16)

_default_backend: Optional[str] = None  # None: read PLUGATTN_BACKEND on first use


# cached by hand (torch.compile warns on lru_cache), per interpreter setting: the interpreter
# needs more than compiled Triton does (numpy), so the answer depends on TRITON_INTERPRET
_triton_unavailable: Dict[bool, Optional[str]] = {}


def _installed_triton_version() -> Optional[str]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("triton")
    except PackageNotFoundError:
        return None


def _why_triton_cannot_run(interpreter: bool) -> Optional[str]:
    """The reason Triton cannot run (``None`` if it can); imports triton as a side effect."""
    try:
        import triton  # noqa: F401
        import triton.language  # noqa: F401

        if interpreter:
            import triton.runtime.interpreter  # noqa: F401  (needs numpy)
        return None
    except Exception as error:  # ImportError, or a broken install raising anything else
        failure = error
    version = _installed_triton_version()
    if version is None and isinstance(failure, ModuleNotFoundError) and failure.name == "triton":
        return "triton is not installed (pip install 'plugattn[triton]')"
    installed = f"triton {version} is installed" if version else "triton is installed"
    # under TRITON_INTERPRET=1, ``import triton`` already imports the interpreter (and numpy)
    how = " with its interpreter switched on (TRITON_INTERPRET=1)" if interpreter else ""
    return f"{installed} but cannot be imported{how}: {type(failure).__name__}: {failure}"


def triton_unavailable_reason() -> Optional[str]:
    """Why Triton cannot run in this process, or ``None`` when it can.

    Names the real cause: triton missing, triton installed but failing to import, or (under
    ``TRITON_INTERPRET=1``) its interpreter failing to import, e.g. ``"triton 3.8.0 is installed
    but cannot be imported with its interpreter switched on (TRITON_INTERPRET=1):
    ModuleNotFoundError: No module named 'numpy'"``.

    Example:
        >>> reason = triton_unavailable_reason()
        >>> reason is None or isinstance(reason, str)
        True
    """
    interpreter = interpreter_enabled()
    if interpreter not in _triton_unavailable:
        _triton_unavailable[interpreter] = _why_triton_cannot_run(interpreter)
    return _triton_unavailable[interpreter]


def triton_available() -> bool:
    """Whether Triton can run in this process (see :func:`triton_unavailable_reason` for why not).

    Example:
        >>> triton_available() == (triton_unavailable_reason() is None)
        True
    """
    return triton_unavailable_reason() is None


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
    reason = triton_unavailable_reason()
    if reason is not None:
        raise RuntimeError(f"{op}: backend='triton' but {reason}")
    if not dtype_ok:
        allowed = ", ".join(str(d).replace("torch.", "") for d in TRITON_DTYPES)
        raise RuntimeError(f"{op}: backend='triton' supports dtypes {allowed}, got {str(x.dtype).replace('torch.', '')}")
    if not device_ok:
        raise RuntimeError(
            f"{op}: backend='triton' needs a CUDA tensor (or TRITON_INTERPRET=1 for CPU tensors), "
            f"got a tensor on {x.device}"
        )
    return "triton"
