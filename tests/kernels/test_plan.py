"""Launch plans (plugattn/kernels/plan.py): the devices, the occupancy floor every SE / ECA / SimAM
launch meets at ResNet-50 stage shapes, the byte models, and that the launchers run exactly the
planned launches (under the interpreter too: CI executes the GPU tile sizes)."""
from __future__ import annotations

import pytest
import torch

from plugattn import kernels
from plugattn.kernels import _common, launch_plan
from plugattn.kernels.plan import DEVICES, DeviceSpec, resolve_device

from .kernel_cases import make_feature_map, random_like

pytestmark = pytest.mark.usefixtures("tensors_on_device")  # tensors on the GPU when there is one

# ResNet-50 stage maps (C, H, W) and the 112x112 stem output
STAGE_MAPS = [(256, 56, 56), (512, 28, 28), (1024, 14, 14), (2048, 7, 7), (64, 112, 112)]
OPS = ("se", "eca", "simam")


@pytest.mark.parametrize("device", sorted(DEVICES))
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("batch", [1, 64])
@pytest.mark.parametrize("op", OPS)
def test_every_launch_fills_the_gpu(op, batch, channels_last, device):
    """At least min(2 x SMs, elements / 4096) programs per launch, forward and backward."""
    spec = DEVICES[device]
    for c, h, w in STAGE_MAPS:
        for dtype in (torch.float32, torch.bfloat16):
            plan = launch_plan(op, (batch, c, h, w), dtype, channels_last=channels_last, device=device)
            floor = min(2 * spec.sm_count, batch * c * h * w // 4096)
            assert {launch.phase for launch in plan} == {"forward", "backward"}
            for launch in plan:
                assert launch.programs >= floor, f"{op} {(batch, c, h, w)}: {launch.kernel} has {launch.programs} < {floor}"
                assert launch.bytes_moved > 0 and launch.num_warps in (4, 8)
                assert launch.constexprs["INT64"] is False  # every stage map fits int32 offsets


def test_byte_models():
    """SE / ECA forward moves 3 tensors (2 when the tensor fits in L2), SimAM's plane kernels 2 and 3."""
    shape, element = (64, 256, 56, 56), 2
    tensor = 64 * 256 * 56 * 56 * element
    for op in ("se", "eca"):
        forward = [launch for launch in launch_plan(op, shape, torch.bfloat16) if launch.phase == "forward"]
        assert 3 * tensor <= sum(launch.bytes_moved for launch in forward) < 3.01 * tensor
        small = launch_plan(op, (1, 256, 56, 56), torch.bfloat16)
        assert small[1].bytes_moved == 56 * 56 * 256 * element + 256 * 4  # the scale pass's read hits L2
    plane = launch_plan("simam", (64, 2048, 7, 7), torch.bfloat16)
    assert [launch.kernel for launch in plane] == ["_simam_fwd_plane_kernel", "_simam_bwd_plane_kernel"]
    assert [launch.bytes_moved for launch in plane] == [2 * 64 * 2048 * 49 * element, 3 * 64 * 2048 * 49 * element]


def test_int64_only_when_needed():
    big = launch_plan("se", (1024, 1024, 56, 56), torch.float32)
    assert all(launch.constexprs["INT64"] for launch in big)
    x = torch.empty(2, 3, 4, 5)
    assert not _common.needs_int64(x) and _common.needs_int64(torch.empty((2, 2**30), device="meta"))
    assert not _common.needs_int64(torch.empty((2, 2**29), device="meta"))


def test_devices_and_bad_arguments():
    assert resolve_device("H200") is DEVICES["h200"]
    small = DeviceSpec("small", sm_count=8, l2_bytes=4 * 2**20, smem_per_block=100 * 1024)
    assert launch_plan("simam", (1, 64, 112, 112), device=small)[0].programs < launch_plan("simam", (1, 64, 112, 112))[0].programs
    with pytest.raises(ValueError, match="device must be one of"):
        launch_plan("se", (1, 8, 4, 4), device="a100x")
    with pytest.raises(ValueError, match="op must be one of"):
        launch_plan("sea", (1, 8, 4, 4))


def _record(monkeypatch):
    launches = []

    def recorder(kernel, grid, *args, **meta):
        launches.append((kernel.__name__ if hasattr(kernel, "__name__") else kernel.fn.__name__, tuple(grid), meta))
        return real(kernel, grid, *args, **meta)

    real = _common.launch
    monkeypatch.setattr(_common, "launch", recorder)
    return launches


@pytest.mark.triton
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("op", OPS)
def test_launchers_run_the_plan(monkeypatch, op, channels_last):
    """The kernels launched (names, grids, tile constexprs, warps) are the plan's, in order, on CPU
    tensors under the interpreter too - the H100 tile sizes, nothing shrunk."""
    launches = _record(monkeypatch)
    shape = (1, 20, 34, 34)  # 1156 values per plane: several HW blocks, several splits
    layout = "channels_last" if channels_last else "contiguous"
    x = make_feature_map(shape, torch.float32, layout).requires_grad_(True)
    if op == "se":
        w1, w2 = random_like(torch.empty(4, 20), 1), random_like(torch.empty(20, 4), 2)
        y = kernels.se(x, w1, None, w2, None, backend="triton")
    elif op == "eca":
        y = kernels.eca(x, random_like(torch.empty(1, 1, 3), 1), backend="triton")
    else:
        y = kernels.simam(x, backend="triton")
    y.backward(make_feature_map(shape, torch.float32, layout, seed=3))  # ∂y in y's layout, as the plan assumes
    plan = launch_plan(op, shape, torch.float32, channels_last=channels_last, device="h100")
    assert [name.lstrip("_") for name, _, _ in launches] == [launch.kernel.lstrip("_") for launch in plan]
    for (name, grid, meta), launch in zip(launches, plan):
        assert grid == launch.grid, name
        assert meta["num_warps"] == launch.num_warps, name
        for key in ("BLOCK_C", "BLOCK_HW"):
            assert meta[key] == launch.constexprs[key], (name, key)
