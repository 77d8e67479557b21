"""Fused Triton kernels for SE, ECA, SimAM and Swin window attention, with PyTorch fallbacks proven equal.

One file per op (``simam.py``, ``eca.py``, ``se.py``: kernels, launcher, reference, autograd), plus
:mod:`.dispatch` for choosing the backend. Each functional op takes ``backend=None`` (process
default: ``PLUGATTN_BACKEND`` or :func:`set_backend` / :func:`use_backend`), ``"auto"``,
``"triton"`` or ``"torch"``.

Example:
    >>> import torch
    >>> from plugattn import kernels
    >>> with kernels.use_backend("torch"):
    ...     kernels.simam(torch.randn(1, 4, 5, 5)).shape
    torch.Size([1, 4, 5, 5])
"""
from .dispatch import (BACKENDS, get_backend, interpreter_enabled, resolve_backend, set_backend, triton_available,
                       triton_unavailable_reason, use_backend)
from .eca import eca, eca_reference
from .se import se, se_reference
from .simam import simam, simam_reference
from .window_attention import window_attention, window_attention_reference

__all__ = [
    "BACKENDS",
    "eca",
    "eca_reference",
    "get_backend",
    "interpreter_enabled",
    "resolve_backend",
    "se",
    "se_reference",
    "set_backend",
    "simam",
    "simam_reference",
    "triton_available",
    "triton_unavailable_reason",
    "use_backend",
    "window_attention",
    "window_attention_reference",
]
