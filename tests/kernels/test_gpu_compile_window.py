"""Ahead-of-time sm_90 compilation of the window-attention kernels at the configurations the planner
picks for production shapes, with a register-spill budget (the helpers are test_gpu_compile.py's).

Shapes: the four Swin-T stages at batch 64 (56×56×96 / 3 heads .. 7×7×768 / 24, window 7) and the
Swin-B stages at 384 px (96×96×128 / 4 .. 12×12×1024 / 32, window 12), in fp32, fp16 and bf16, forward
and backward, the backward in both bias-gradient modes (relaxed atomics and deterministic). The
launchers run on CPU tensors (allocated, never filled) with the kernel launch replaced by a recorder,
so what is compiled is exactly what the launcher passes on an H100; each distinct configuration is
compiled once, in a subprocess without ``TRITON_INTERPRET``:
``python tests/kernels/test_gpu_compile_window.py <group>`` prints one JSON line per configuration.

Spill budget: none for the tensor-core (fp16/bf16) configurations - what trains - and
:data:`WINDOW_MAX_SPILL_BYTES` for fp32 ("ieee" tl.dot, no tensor cores), whose window-12 backward keeps
fp32 k, v, dk, dv of 144 keys on chip: measured with triton 3.8 for sm_90, 48-64 B (255 registers,
8 warps); every other configuration is spill-free (the window-7 bf16 backward at 8 windows per
program, the batch-64 configuration that used to spill: 172-174 registers).
"""
from __future__ import annotations

import importlib
import os
import sys
from typing import Callable, Dict

import pytest
import torch

if __name__ == "__main__":  # the subprocess: make the repository importable as in pytest
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from tests.kernels import test_gpu_compile as aot  # noqa: E402

SWIN_T_BATCH_64 = [(64, 56, 56, 96, 3, 7, 3), (64, 28, 28, 192, 6, 7, 3), (64, 14, 14, 384, 12, 7, 3),
                   (64, 7, 7, 768, 24, 7, 0)]
SWIN_B_384_BATCH_64 = [(64, 96, 96, 128, 4, 12, 6), (64, 48, 48, 256, 8, 12, 6), (64, 24, 24, 512, 16, 12, 6),
                       (64, 12, 12, 1024, 32, 12, 0)]
# Spill budget (bytes of spill stores + loads per thread): 0 for tensor-core configurations; the fp32
# backward may spill up to this much (see the module docstring).
WINDOW_MAX_SPILL_BYTES = 128
GROUPS = ("window_attention_forward", "window_attention_backward")


def _record(recorder: "aot._LaunchRecorder", backward: bool) -> None:
    launcher = importlib.import_module("plugattn.kernels.window_attention_kernel.launcher")
    wa = importlib.import_module("plugattn.kernels.window_attention_kernel")

    def record_planned(kernel, planned, *args, **constexprs):
        recorder.launch(kernel, planned.grid, *args, num_warps=planned.num_warps, **{**planned.constexprs, **constexprs})

    launcher.launch_planned = record_planned
    for shape in SWIN_T_BATCH_64 + SWIN_B_384_BATCH_64:
        batch, height, width, channels, heads, window, shift = shape
        for dtype in aot.DTYPES:
            qkv = torch.empty(batch, height, width, 3 * channels, dtype=dtype)
            bias = torch.empty(heads, window * window)[:, None, :].expand(heads, window * window, window * window)
            if backward:
                for deterministic in (False, True):
                    torch.use_deterministic_algorithms(deterministic)
                    launcher.launch_backward(torch.empty(qkv.shape[:3] + (channels,), dtype=dtype), qkv, bias,
                                             window, shift, 0.125)
                torch.use_deterministic_algorithms(False)
            else:
                launcher.launch_forward(qkv, bias, window, shift, 0.125)
    assert wa.MAX_TRITON_WINDOW >= 12


RECORDERS: Dict[str, Callable] = {
    "window_attention_forward": lambda r: _record(r, backward=False),
    "window_attention_backward": lambda r: _record(r, backward=True),
}


@pytest.mark.slow
@pytest.mark.parametrize("group", GROUPS)
def test_window_kernels_compile_for_sm90_at_production_shapes(group: str) -> None:
    compiled = aot.compiled_records(group, __file__)
    for r in compiled:
        spilled = r["spill_bytes"] or 0
        budget = WINDOW_MAX_SPILL_BYTES if r["config"]["PRECISION"] == "ieee" else 0
        assert spilled <= budget, f"{r['config']} spills {spilled} B ({r['registers']} registers), budget {budget} B"
    kernels = {r["config"]["kernel"] for r in compiled}
    expected = {"window_attention_forward": {"window_attention_fwd_kernel"},
                "window_attention_backward": {"window_attention_bwd_kernel"}}[group]
    assert kernels == expected, f"compiled {sorted(kernels)}, expected {sorted(expected)}"
    if group == "window_attention_backward":  # the batch-64 configurations with several windows per program
        assert any(r["config"]["WINDOWS_PER_PROGRAM"] > 1 for r in compiled)


if __name__ == "__main__":
    sys.exit(aot.run_group(sys.argv[1], RECORDERS, every_dtype=True))
