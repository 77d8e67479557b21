"""Launch geometry: which Triton kernels an op launches on a given GPU, with what grid and tiles.

Every op file registers a *planner* with :func:`register_planner`. A planner maps a problem
(shape, dtype, layout) and a :class:`DeviceSpec` to the list of :class:`Launch` es the op makes, in
order. The launchers call the same planner, so what :func:`launch_plan` reports is what runs.

Devices are named ("h100", "h200") or described by a :class:`DeviceSpec`; the L2 size decides
whether a fused single-kernel path fits, the SM count how many programs fill the chip.

Example:
    >>> spec = resolve_device("h100")
    >>> spec.sm_count
    132
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Sequence, Tuple, Union

import torch

from .._validate import check_choice


@dataclass(frozen=True)
class DeviceSpec:
    """What a launch plan needs to know about a GPU."""

    name: str
    sm_count: int
    l2_bytes: int
    smem_per_block: int  # the opt-in maximum of dynamic shared memory per program, bytes


@dataclass(frozen=True)
class Launch:
    """One kernel launch: its name, grid, compile-time constants, warps and the bytes it moves.

    ``args`` holds the runtime scalars the plan decides (e.g. how many splits a reduction has);
    ``phase`` is ``"forward"`` or ``"backward"`` (a plan lists the forward launches, then the backward).
    """

    kernel: str
    grid: Tuple[int, ...]
    constexprs: Mapping[str, object] = field(default_factory=dict)
    num_warps: int = 4
    bytes_moved: int = 0
    args: Mapping[str, object] = field(default_factory=dict)
    phase: str = "forward"

    @property
    def programs(self) -> int:
        count = 1
        for extent in self.grid:
            count = count * extent  # no int(): a symbolic extent would be pinned to its traced value
        return count


# ----------------------------------------------------------------------------- symbolic sizes
# Under torch.compile(dynamic=True) on a GPU the ops' bodies (triton_op) are traced with sizes that are
# torch.SymInts. Turning one into a Python int (int(), range(), a branch on its value) guards on that
# exact value: one graph per shape. Planners therefore keep grids and runtime arguments symbolic
# (sym_max / sym_min / cdiv, no guard) and derive each tile constexpr from a power-of-two bucket of a
# size (pow2_bucket: at most two range guards, shared by every size in the bucket).
def is_symbolic(value: object) -> bool:
    """Whether ``value`` is a symbolic size (a ``torch.SymInt`` while torch.compile traces)."""
    return isinstance(value, torch.SymInt)


def size_hint(value: Union[int, torch.SymInt]) -> int:
    """The concrete value of a size, without a guard: a SymInt's traced example value. Only for figures
    no kernel argument depends on (byte models).

    Example:
        >>> size_hint(7)
        7
    """
    return value.node.hint if is_symbolic(value) else int(value)


def cdiv(a: Union[int, torch.SymInt], b: Union[int, torch.SymInt]) -> Union[int, torch.SymInt]:
    """ceil(a / b) for non-negative sizes, symbolic where they are (no guard).

    Example:
        >>> cdiv(10, 4)
        3
    """
    return (a + b - 1) // b


def sym_max(a, b):
    """max of two sizes, symbolic (no guard) where either is; ``max`` for ints."""
    return torch.sym_max(a, b) if is_symbolic(a) or is_symbolic(b) else max(a, b)


def sym_min(a, b):
    """min of two sizes, symbolic (no guard) where either is; ``min`` for ints."""
    return torch.sym_min(a, b) if is_symbolic(a) or is_symbolic(b) else min(a, b)


def next_power_of_2(n: int) -> int:
    """The smallest power of two >= ``n`` (1 for n <= 1).

    Example:
        >>> next_power_of_2(33), next_power_of_2(0)
        (64, 1)
    """
    return 1 << max(0, int(n) - 1).bit_length()


def pow2_bucket(size: Union[int, torch.SymInt], cap: int) -> int:
    """``min(next_power_of_2(size), cap)`` (``cap`` a power of two) as a Python int, for tile constexprs.

    For a symbolic size it guards only on the bucket: ``size > cap / 2`` when the result is ``cap``,
    else ``p / 2 < size <= p``; every size in the bucket reuses the compiled graph.

    Example:
        >>> pow2_bucket(3136, 1024), pow2_bucket(40, 1024), pow2_bucket(1, 64)
        (1024, 64, 1)
    """
    bucket = min(next_power_of_2(size_hint(size)), cap)
    if not is_symbolic(size):
        return bucket
    record_guard = bool  # bool() of a symbolic comparison records it as a guard (the traced size holds it)
    if bucket == cap:
        if cap > 1:
            record_guard(size > cap // 2)
    else:
        record_guard(size <= bucket)
        if bucket > 1:
            record_guard(size > bucket // 2)
    return bucket


# H100 SXM and H200 SXM share the GH100 die: 132 SMs, 50 MiB of L2, 227 KiB of shared memory per block.
DEVICES: Dict[str, DeviceSpec] = {
    "h100": DeviceSpec("h100", sm_count=132, l2_bytes=50 * 2**20, smem_per_block=227 * 1024),
    "h200": DeviceSpec("h200", sm_count=132, l2_bytes=50 * 2**20, smem_per_block=227 * 1024),
}

Planner = Callable[[Tuple[int, ...], torch.dtype, bool, DeviceSpec], List[Launch]]
_PLANNERS: Dict[str, Planner] = {}


def register_planner(op: str) -> Callable[[Planner], Planner]:
    """Decorator: ``planner(shape, dtype, channels_last, device) -> [Launch, ...]`` for ``op``."""

    def register(planner: Planner) -> Planner:
        _PLANNERS[op] = planner
        return planner

    return register


def resolve_device(device: Union[str, DeviceSpec, torch.device]) -> DeviceSpec:
    """A :class:`DeviceSpec` from a name in :data:`DEVICES`, a spec, or a CUDA ``torch.device``."""
    if isinstance(device, DeviceSpec):
        return device
    if isinstance(device, torch.device):
        props = torch.cuda.get_device_properties(device)
        smem = getattr(props, "shared_memory_per_block_optin", 227 * 1024)
        l2 = getattr(props, "L2_cache_size", 50 * 2**20)
        return DeviceSpec(props.name, props.multi_processor_count, int(l2), int(smem))
    check_choice("device", str(device).lower(), tuple(DEVICES))
    return DEVICES[str(device).lower()]


def launch_plan(op: str, shape: Sequence[int], dtype: torch.dtype = torch.float32, *,
                channels_last: bool = False, device: Union[str, DeviceSpec] = "h100") -> List[Launch]:
    """The launches ``op`` makes for an input of ``shape`` on ``device``, in order.

    ``device`` is "h100", "h200", a :class:`DeviceSpec` or a CUDA ``torch.device``. Each op file
    registers its planner with :func:`register_planner`; the op's launcher uses the same planner.
    """
    # the op files register their planners when the package imports them
    import importlib

    importlib.import_module(__package__)

    check_choice("op", op, tuple(sorted(_PLANNERS)))
    return _PLANNERS[op](tuple(int(s) for s in shape), dtype, channels_last, resolve_device(device))
