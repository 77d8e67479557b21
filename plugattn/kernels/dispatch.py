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
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, Optional, Tuple

import torch

from .._validate import check_choice

BACKENDS = ("auto", "triton", "torch")
TRITON_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


_TRITON_DTYPE_NAMES = ", ".join(map(_dtype_name, TRITON_DTYPES))  # for messages

_default_backend: Optional[str] = None  # None: read PLUGATTN_BACKEND on first use
_default_origin: Optional[str] = None  # how the default was set, for choose_backend's reason


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
    global _default_backend, _default_origin
    if _default_backend is None:
        from_env = os.environ.get("PLUGATTN_BACKEND", "auto").strip().lower() or "auto"
        _default_backend = check_choice("PLUGATTN_BACKEND", from_env, BACKENDS)
        _default_origin = f"PLUGATTN_BACKEND={from_env}" if "PLUGATTN_BACKEND" in os.environ else None
    return _default_backend


def set_backend(backend: str) -> None:
    """Set the process-wide default backend.

    Example:
        >>> set_backend("torch"); get_backend()
        'torch'
        >>> set_backend("auto")
    """
    global _default_backend, _default_origin
    _default_backend = check_choice("backend", backend, BACKENDS)
    _default_origin = f"set_backend({backend!r})"


@contextlib.contextmanager
def use_backend(backend: str) -> Iterator[None]:
    """Context manager that sets the default backend and restores the previous one on exit.

    Example:
        >>> with use_backend("torch"):
        ...     get_backend()
        'torch'
    """
    global _default_backend, _default_origin
    previous = (get_backend(), _default_origin)
    set_backend(backend)
    _default_origin = f"use_backend({backend!r})"
    try:
        yield
    finally:
        _default_backend, _default_origin = previous


@dataclass(frozen=True)
class BackendChoice:
    """Which implementation runs an op (``backend``: ``"triton"`` or ``"torch"``) and why (``reason``).

    Example:
        >>> str(BackendChoice("torch", "cpu tensor"))
        'torch (cpu tensor)'
    """

    backend: str
    reason: str

    def __str__(self) -> str:
        return f"{self.backend} ({self.reason})"


# op -> check(**op_facts) returning why the op's Triton kernel cannot take these sizes (None: it can);
# each op file registers its own, so this module imports no kernel
_TRITON_LIMITS: Dict[str, Callable[..., Optional[str]]] = {}


def register_triton_limits(op: str, unsupported_reason: Callable[..., Optional[str]]) -> None:
    """Let :func:`choose_backend` check ``op``'s own kernel limits: ``unsupported_reason(**op_facts)``
    returns why the kernel cannot run those sizes, or ``None`` when it can.

    Example:
        >>> from plugattn.kernels.window_attention_kernel import triton_unsupported_reason
        >>> register_triton_limits("window_attention", triton_unsupported_reason)  # what its op file does
    """
    _TRITON_LIMITS[op] = unsupported_reason


def _requested(requested: Optional[str]) -> Tuple[str, str]:
    """(backend asked for, how it was asked): the argument, or the process default and where it came from."""
    if requested is not None:
        return check_choice("backend", requested, BACKENDS), f"backend={requested!r}"
    backend = get_backend()
    return backend, _default_origin or f"default backend {backend!r}"


def choose_backend(op: str, x: torch.Tensor, requested: Optional[str] = None, **op_facts: object) -> BackendChoice:
    """Which implementation runs ``op`` on ``x``, and why: the one place plugattn decides it.

    ``requested`` is ``"auto"``, ``"triton"``, ``"torch"`` or ``None`` (the process default:
    ``PLUGATTN_BACKEND``, :func:`set_backend`, :func:`use_backend`). ``op_facts`` are the sizes an op's
    kernel has limits on (window attention: ``window_size``, ``head_dim``). Under ``"auto"`` Triton
    runs when ``x`` is a CUDA tensor of a Triton dtype, the sizes fit the kernel and triton imports;
    otherwise PyTorch, with the first reason found. Forcing ``"triton"`` where it cannot run raises
    ``RuntimeError`` saying why.

    Example:
        >>> choose_backend("eca", torch.ones(1, 4, 2, 2), "auto")
        BackendChoice(backend='torch', reason='cpu tensor')
        >>> choose_backend("eca", torch.ones(1, 4, 2, 2), "torch").reason
        "backend='torch'"
    """
    backend, origin = _requested(requested)
    if op_facts and op not in _TRITON_LIMITS:
        raise ValueError(f"choose_backend: op {op!r} has no kernel limits to check {', '.join(sorted(op_facts))} "
                         f"against; ops with limits: {', '.join(sorted(_TRITON_LIMITS)) or 'none'}")
    if backend == "torch":
        return BackendChoice("torch", origin)
    dtype_ok = x.dtype in TRITON_DTYPES
    limit = _TRITON_LIMITS[op](**op_facts) if op_facts else None
    if backend == "auto":
        # cheapest and most telling first; triton is imported only for a CUDA tensor
        if not x.is_cuda:
            return BackendChoice("torch", f"{x.device.type} tensor")
        if not dtype_ok:
            return BackendChoice("torch", f"dtype {_dtype_name(x.dtype)} is not one of {_TRITON_DTYPE_NAMES}")
        if limit is not None:
            return BackendChoice("torch", f"outside the Triton kernel's limits: {limit}")
        reason = triton_unavailable_reason()
        if reason is not None:
            return BackendChoice("torch", f"triton not importable: {reason}")
        return BackendChoice("triton", "cuda tensor and triton importable")
    # backend == "triton": explain exactly what stands in the way
    reason = triton_unavailable_reason()
    if reason is not None:
        raise RuntimeError(f"{op}: backend='triton' but {reason}")
    if not dtype_ok:
        raise RuntimeError(f"{op}: backend='triton' supports dtypes {_TRITON_DTYPE_NAMES}, got {_dtype_name(x.dtype)}")
    if not (x.is_cuda or (x.device.type == "cpu" and interpreter_enabled())):
        raise RuntimeError(
            f"{op}: backend='triton' needs a CUDA tensor (or TRITON_INTERPRET=1 for CPU tensors), "
            f"got a tensor on {x.device}"
        )
    if limit is not None:
        raise RuntimeError(f"{op}: backend='triton' does not support {limit}")
    where = "cuda tensor" if x.is_cuda else "cpu tensor in Triton's interpreter (TRITON_INTERPRET=1)"
    return BackendChoice("triton", f"{origin}, {where}")


NO_KERNEL = "no kernel"  # the reason :func:`module_backend` gives for a module without a Triton kernel


def module_backend(module: torch.nn.Module, x: torch.Tensor, requested: Optional[str] = None) -> BackendChoice:
    """What ``module(x)`` runs: :func:`choose_backend` for the op behind ``module`` (SE, ECA, SimAM,
    window attention), ``torch`` with reason ``"no kernel"`` for every other module.

    Example:
        >>> from plugattn.attention import SimAM
        >>> module_backend(SimAM(8), torch.randn(1, 8, 4, 4))
        BackendChoice(backend='torch', reason='cpu tensor')
    """
    from ..attention import ECALayer, SELayer, SimAM, WindowAttention2d  # attention imports the kernels

    if isinstance(module, WindowAttention2d):
        return choose_backend("window_attention", x, requested, window_size=module.window_size,
                              head_dim=module.head_dim)
    for cls, op in ((SELayer, "se"), (ECALayer, "eca"), (SimAM, "simam")):
        if isinstance(module, cls):
            return choose_backend(op, x, requested)
    return BackendChoice("torch", NO_KERNEL)
