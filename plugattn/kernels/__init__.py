"""Fused Triton kernels for SE, ECA, SimAM and Swin window attention, with PyTorch fallbacks proven equal.

Naming scheme (one for every op):

* the public function is ``plugattn.kernels.<op>`` - :func:`se`, :func:`eca`, :func:`simam`,
  :func:`window_attention` - with its reference ``plugattn.kernels.<op>_reference``;
* the file holding it is the module ``plugattn.kernels.<op>_kernel`` (``se_kernel.py``,
  ``eca_kernel.py``, ``simam_kernel.py``, ``window_attention_kernel.py`` - or a package of that
  name when an op is split over several files). No module is named like a function, so
  ``import plugattn.kernels.se_kernel as m`` gives the module and ``plugattn.kernels.se`` the function;
* each op file reads top to bottom: reference, ``@triton.jit`` kernels, launcher (sizes from the op's
  planner in :mod:`.plan`), op registration (``torch.library``, ``plugattn::<op>`` and
  ``plugattn::<op>_backward``, Python objects ``<op>_op`` / ``<op>_backward_op``), public function.

Shared pieces: :mod:`._common` (Triton helpers, op registration, streaming kernels), :mod:`.dispatch`
(choosing the backend: :func:`choose_backend`), :mod:`.plan` (launch geometry: :func:`launch_plan`).
Each functional op takes ``backend=None`` (process default: ``PLUGATTN_BACKEND`` or
:func:`set_backend` / :func:`use_backend`), ``"auto"``, ``"triton"`` or ``"torch"``.

Example:
    >>> import torch
    >>> from plugattn import kernels
    >>> with kernels.use_backend("torch"):
    ...     kernels.simam(torch.randn(1, 4, 5, 5)).shape
    torch.Size([1, 4, 5, 5])
"""
from .dispatch import (BACKENDS, BackendChoice, choose_backend, get_backend, interpreter_enabled, module_backend,
                       set_backend, triton_available, triton_unavailable_reason, use_backend)
from .eca_kernel import eca, eca_reference
from .plan import DEVICES, DeviceSpec, Launch, launch_plan
from .se_kernel import se, se_reference
from .simam_kernel import simam, simam_reference
from .window_attention_kernel import window_attention, window_attention_reference

__all__ = [
    "BACKENDS",
    "BackendChoice",
    "DEVICES",
    "DeviceSpec",
    "Launch",
    "choose_backend",
    "eca",
    "eca_reference",
    "get_backend",
    "interpreter_enabled",
    "launch_plan",
    "module_backend",
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
