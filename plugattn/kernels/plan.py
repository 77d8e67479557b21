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
            count *= int(extent)
        return count


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
