"""The launch plans behind a benchmark run, as text: what ``plugattn bench`` prints under its table.

Example:
    >>> print(format_plans(["simam"], [(1, 2048, 7, 7)], ["fp32"], "h100"))  # doctest: +NORMALIZE_WHITESPACE
    launch plan (h100: 132 SMs, 50 MiB L2)
    op=simam dtype=fp32 shape=1x2048x7x7 layout=nchw
      forward  _simam_fwd_plane_kernel grid=(64,) warps=4 moves=0.803 MB INT64=False BLOCK_C=32 BLOCK_HW=64
      backward _simam_bwd_plane_kernel grid=(64,) warps=8 moves=1.2 MB INT64=False BLOCK_C=32 BLOCK_HW=64
"""
from __future__ import annotations

from typing import Dict, Sequence, Tuple, Union

import torch

from ..kernels.plan import DeviceSpec, launch_plan, resolve_device

DTYPES: Dict[str, torch.dtype] = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
# benchmark op name -> planner name (the planners take each op's own shape convention)
PLANNED_OPS = {"simam": "simam", "eca": "eca", "se": "se", "window": "window_attention"}


def format_plans(ops: Sequence[str], shapes: Sequence[Tuple[int, ...]], dtypes: Sequence[str],
                 device: Union[str, DeviceSpec, torch.device] = "h100", channels_last: bool = False) -> str:
    """One block per (op, dtype, shape): each launch's phase, kernel, grid, warps, MB moved and constexprs."""
    spec = resolve_device(device)
    lines = [f"launch plan ({spec.name}: {spec.sm_count} SMs, {spec.l2_bytes / 2**20:.0f} MiB L2)"]
    for op in ops:
        planner = PLANNED_OPS.get(op)
        if planner is None:
            continue
        for dtype_name in dtypes:
            for shape in shapes:
                layout = "channels_last" if channels_last else "nchw"
                lines.append(f"op={op} dtype={dtype_name} shape={'x'.join(map(str, shape))} layout={layout}")
                try:
                    plan = launch_plan(planner, shape, DTYPES[dtype_name], channels_last=channels_last, device=spec)
                except ValueError as error:  # e.g. no planner registered for this op in this install
                    lines.append(f"  no plan: {error}")
                    continue
                for launch in plan:
                    constants = " ".join(f"{k}={v}" for k, v in launch.constexprs.items())
                    lines.append(f"  {launch.phase:<8} {launch.kernel} grid={tuple(launch.grid)} warps={launch.num_warps} "
                                 f"moves={launch.bytes_moved / 1e6:.3g} MB {constants}".rstrip())
    return "\n".join(lines)
