"""Ahead-of-time compilation of every Triton kernel for an H100 (CUDA sm_90), without a GPU.

Triton's CPU interpreter (what the other kernel tests run on when no GPU is present) does not check
what the real compiler checks: tl.dot operand shapes and dtypes, constexpr rules, int32/int64 mixing,
layout conversions, register/shared-memory limits. Here every kernel goes through the real pipeline
(TTIR -> TTGIR -> LLVM IR -> PTX -> cubin with the ptxas bundled with triton) for sm_90.

Configurations are not listed by hand: each op's own launcher is run on CPU tensors of many shapes,
dtypes and layouts with the kernel launch replaced by a recorder, so the constexprs, ``num_warps``
and argument types compiled are exactly those the launchers pass on a GPU (the heuristics run with
the interpreter switched off). The argument specialisation (ints equal to 1 become constants,
16-divisibility hints) is triton's own runtime binder where the installed triton exposes it.

``TRITON_INTERPRET=1`` (set by tests/conftest.py without a GPU) turns every ``@triton.jit`` into an
interpreter function that ``triton.compile`` cannot take, so the compilation runs in a subprocess
without it: ``python tests/kernels/test_gpu_compile.py <group>`` prints one JSON line per compiled
configuration. Nothing is cached in the repository (a temporary TRITON_CACHE_DIR is used). The
subprocess has no time limit: on a loaded machine it only takes longer, and a test must not fail for that.
Where triton is installed but cannot compile (no CUDA backend, no ptxas, a broken install), the
subprocess says why and the test is skipped with that reason.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import pytest
import torch

H100_ARCH = 90
H100_MAX_SHARED_BYTES = 232448  # 227 KiB of dynamic shared memory per block on sm_90
DTYPES = (torch.float32, torch.float16, torch.bfloat16)
LAYOUTS = ("contiguous", "channels_last", "strided")
GROUPS = ("simam_eca_se",)  # window attention: tests/kernels/test_gpu_compile_window.py
RESULT_PREFIX = "AOT-RESULT "


# ----------------------------------------------------------------------------- inputs
def _feature_map(shape: Tuple[int, int, int, int], dtype: torch.dtype, layout: str) -> torch.Tensor:
    """Uninitialised (N, C, H, W) CPU tensor in a layout: only shapes and strides matter here."""
    n, c, h, w = shape
    if layout == "contiguous":
        return torch.empty(shape, dtype=dtype)
    if layout == "channels_last":
        return torch.empty(shape, dtype=dtype).contiguous(memory_format=torch.channels_last)
    # a view whose H and W strides do not collapse into one axis (HW_FLAT=False)
    return torch.empty((n, 2 * c, h + 1, w + 3), dtype=dtype)[:, ::2, 1:, 2 : w + 2]


# SE / ECA / SimAM: the configurations ``launch_plan`` picks at production shapes - the ResNet-50 stage
# maps (and the 112x112 stem output) at batch 1 and 64 - plus edge cases (1x1 maps, C = 1 and 3, tiny
# planes); every layout, every dtype, gated and not. run_group compiles each distinct configuration once.
PRODUCTION_MAPS = [(256, 56, 56), (512, 28, 28), (1024, 14, 14), (2048, 7, 7), (64, 112, 112)]
CHANNEL_OP_SHAPES = [(batch, *m) for m in PRODUCTION_MAPS for batch in (1, 64)] + [
    (2, 2048, 1, 1), (2, 3, 5, 5), (2, 1, 7, 7), (1, 32, 64, 64)]
FULL = os.environ.get("PLUGATTN_AOT_FULL", "0") not in ("", "0")


def _rotated(dtypes: tuple, shift: int) -> tuple:
    """``dtypes`` starting at index ``shift``: spreads the first (compiled) dtype over the shapes."""
    shift %= len(dtypes)
    return dtypes[shift:] + dtypes[:shift]


class _LaunchRecorder:
    """Stands in for ``launch(kernel, grid, *args, **meta)`` / ``kernel[grid](*args, **meta)``."""

    def __init__(self) -> None:
        self.launches: List[Tuple[Any, tuple, dict]] = []

    def launch(self, kernel: Any, grid: tuple, *args: Any, **meta: Any) -> None:
        self.launches.append((kernel, args, dict(meta)))

    def kernel(self, kernel: Any) -> Any:
        recorder = self

        class _Indexable:
            def __getitem__(self, grid: tuple) -> Callable[..., None]:
                return lambda *args, **meta: recorder.launch(kernel, grid, *args, **meta)

        return _Indexable()


def _record_simam_eca_se(recorder: _LaunchRecorder) -> None:
    """Run the SE / ECA / SimAM launchers forward and backward with every launch recorded (they all
    launch through ``_common.launch``; plans for CPU tensors are the H100's)."""
    common = importlib.import_module("plugattn.kernels._common")
    se = importlib.import_module("plugattn.kernels.se_kernel")
    eca = importlib.import_module("plugattn.kernels.eca_kernel")
    simam = importlib.import_module("plugattn.kernels.simam_kernel")
    common.launch = recorder.launch
    for shape in CHANNEL_OP_SHAPES:
        c = shape[1]
        hidden = max(1, c // 16)
        for dtype in DTYPES:
            for layout in LAYOUTS:
                x = _feature_map(shape, dtype, layout)
                grad = torch.empty_like(x)
                for gamma in (None, torch.zeros(c, dtype=dtype)):
                    simam._simam_forward(x, 1e-4, gamma)
                    simam._simam_backward(grad, x, 1e-4, gamma)
                weight = torch.zeros(1, 1, 3, dtype=dtype)
                eca._eca_forward(x, weight, None)
                eca._eca_backward(grad, x, weight, None)
                w1, w2 = torch.zeros(hidden, c, 1, 1, dtype=dtype), torch.zeros(c, hidden, 1, 1, dtype=dtype)
                b1, b2 = torch.zeros(hidden, dtype=dtype), torch.zeros(c, dtype=dtype)
                se._se_forward(x, w1, b1, w2, b2, None, "relu", "sigmoid")
                se._se_backward(grad, x, w1, b1, w2, b2, None, "relu", "sigmoid")


RECORDERS: Dict[str, Callable[[_LaunchRecorder], None]] = {
    "simam_eca_se": _record_simam_eca_se,
}


# ----------------------------------------------------------------------------- compilation (subprocess)
def _probe_kernel(triton: Any) -> Any:
    """A trivial kernel that checks the toolchain (backend, ptxas) before any plugattn kernel is blamed;
    defined only in the subprocess, so importing this file never needs triton."""
    tl = triton.language

    @triton.jit
    def _aot_probe_kernel(x_ptr, n, BLOCK: tl.constexpr):
        offsets = tl.arange(0, BLOCK)
        tl.store(x_ptr + offsets, tl.load(x_ptr + offsets, mask=offsets < n) * 2.0, mask=offsets < n)

    return _aot_probe_kernel


OPTION_NAMES = ("num_warps", "num_stages", "num_ctas")
DTYPE_SENSITIVE = ("HW_FLAT", "N_PAD", "PRECISION")


def _plain_signature(kernel: Any, args: tuple, meta: dict) -> Tuple[dict, dict, dict]:
    """(signature, constexprs, attrs) without triton's runtime specialisation (older/newer APIs)."""
    names = list(kernel.arg_names)
    signature: Dict[str, str] = {}
    for name, value in zip(names, args):
        if isinstance(value, torch.Tensor):
            signature[name] = "*" + {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}[value.dtype]
        elif isinstance(value, bool):
            signature[name] = "i1"
        elif isinstance(value, int):
            signature[name] = "i32" if -(2**31) <= value < 2**31 else "i64"
        else:
            signature[name] = "fp32"
    constexprs = {name: value for name, value in meta.items()}
    signature.update({name: "constexpr" for name in constexprs})
    return signature, constexprs, {}


def _specialise(kernel: Any, args: tuple, meta: dict, backend: Any) -> Tuple[dict, dict, dict, str]:
    """(signature, constexprs, attrs, how): triton's own runtime specialisation where available."""
    try:
        from triton.runtime.jit import create_function_from_signature

        binder = create_function_from_signature(kernel.signature, kernel.params, backend)
        bound, specialization, options = binder(*args, **meta)
        _, signature, constexprs, attrs = kernel._pack_args(backend, dict(meta), bound, specialization, options)
        return signature, constexprs, attrs, "runtime"
    except Exception:  # the private binder API differs between triton releases
        constants = {k: v for k, v in meta.items() if k not in OPTION_NAMES}
        signature, constexprs, attrs = _plain_signature(kernel, args, constants)
        return signature, constexprs, attrs, "plain"


_USAGE = re.compile(r"Used (\d+) registers")
_SPILLS = re.compile(r"(\d+) bytes spill stores, (\d+) bytes spill loads")


def _compile_one(triton: Any, target: Any, kernel: Any, signature: dict, constexprs: dict, attrs: dict,
                 options: dict) -> dict:
    """Compile for ``target``; the ptxas log (printed by TRITON_DUMP_PTXAS_LOG) gives registers/spills."""
    log = io.StringIO()
    start = time.perf_counter()
    try:
        with contextlib.redirect_stdout(log):
            source = triton.compiler.ASTSource(fn=kernel, signature=signature, constexprs=constexprs, attrs=attrs)
            compiled = triton.compile(source, target=target, options=options)
    except Exception as error:  # reported, and failed, by the test
        message = f"{type(error).__name__}: {error}"
        return {"ok": False, "error": message[-3000:], "seconds": time.perf_counter() - start}
    text = log.getvalue()
    registers = [int(m) for m in _USAGE.findall(text)]
    spills = [int(a) + int(b) for a, b in _SPILLS.findall(text)]
    return {
        "ok": True,
        "cubin_bytes": len(compiled.asm.get("cubin", b"")),
        "has_ptx": "ptx" in compiled.asm,
        "shared_bytes": int(compiled.metadata.shared),
        "registers": max(registers) if registers else None,
        "spill_bytes": max(spills) if spills else None,
        "seconds": time.perf_counter() - start,
    }


def _readable(kernel: Any, meta: dict, args: tuple) -> dict:
    dtypes = sorted({str(a.dtype).replace("torch.", "") for a in args if isinstance(a, torch.Tensor)})
    return {"kernel": kernel.__name__, "dtypes": dtypes, **{k: v for k, v in meta.items()}}


def run_group(group: str, recorders: Optional[Dict[str, Callable[[_LaunchRecorder], None]]] = None,
              every_dtype: bool = False) -> int:
    """Record the group's launches, compile each distinct configuration for sm_90, print JSON lines
    (``every_dtype``: each configuration in each dtype it was launched with, as with FULL)."""
    def emit(record: dict) -> None:
        print(RESULT_PREFIX + json.dumps(record), flush=True)

    try:
        import triton
        import triton.compiler
        import triton.language
        from triton.backends.compiler import GPUTarget
        from triton.compiler import make_backend

        target = GPUTarget("cuda", H100_ARCH, 32)
        backend = make_backend(target)
    except Exception as error:
        emit({"unavailable": f"triton {getattr(sys.modules.get('triton'), '__version__', '?')} AOT API: "
                             f"{type(error).__name__}: {error}"})
        return 0
    probe = _compile_one(triton, target, _probe_kernel(triton), {"x_ptr": "*fp32", "n": "i32", "BLOCK": "constexpr"},
                         {"BLOCK": 128}, {}, {"num_warps": 4})
    if not probe["ok"]:  # the toolchain, not a plugattn kernel: no ptxas, no backend, another ASTSource API
        emit({"unavailable": f"triton {triton.__version__} cannot compile a trivial kernel: {probe['error'][:800]}"})
        return 0
    recorder = _LaunchRecorder()
    (recorders or RECORDERS)[group](recorder)
    seen = set()
    for kernel, args, meta in recorder.launches:
        options = {k: meta[k] for k in OPTION_NAMES if k in meta}
        signature, constexprs, attrs, how = _specialise(kernel, args, meta, backend)
        config = _readable(kernel, meta, args)
        if every_dtype and not FULL:
            keys = [repr(sorted(config.items(), key=repr))]
        elif FULL:  # every launcher configuration in every dtype and every argument specialisation
            keys = [repr((config, sorted(signature.items()), sorted(constexprs.items(), key=repr),
                          sorted(attrs.items(), key=repr)))]
        else:  # every configuration once (dtypes rotate over the shapes) and every dtype with every
            # value of the constexprs that change the generated memory accesses / tl.dot shapes
            dtype_free = {k: v for k, v in config.items() if k != "dtypes"}
            dtype_sensitive = {k: v for k, v in config.items() if k in DTYPE_SENSITIVE}
            keys = [repr(dtype_free), repr((kernel.__name__, config["dtypes"], dtype_sensitive))]
        if all(key in seen for key in keys):
            continue
        seen.update(keys)
        result = _compile_one(triton, target, kernel, signature, constexprs, attrs, options)
        emit({"config": _readable(kernel, meta, args), "specialisation": how, **result})
    return 0


# ----------------------------------------------------------------------------- the test
def _run_subprocess(group: str, cache_dir: str, script: str = __file__) -> Tuple[List[dict], str]:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.update(TRITON_CACHE_DIR=cache_dir, TRITON_DUMP_PTXAS_LOG="1", OMP_NUM_THREADS="1",
               TRITON_HOME=cache_dir, PYTHONDONTWRITEBYTECODE="1")
    # no timeout: how long the compilation takes depends on the machine and its load, not on the code
    done = subprocess.run([sys.executable, os.path.abspath(script), group], env=env, capture_output=True, text=True)
    records = [json.loads(line[len(RESULT_PREFIX):]) for line in done.stdout.splitlines()
               if line.startswith(RESULT_PREFIX)]
    return records, f"exit {done.returncode}\n{done.stderr[-4000:]}"


def compiled_records(group: str, script: str = __file__) -> List[dict]:
    """Compile ``group`` in a subprocess running ``script``; skip where the toolchain is missing, fail on
    any configuration that does not compile or does not fit the H100's shared memory per block."""
    if importlib.util.find_spec("triton") is None:
        pytest.skip("triton is not installed")
    cache_dir = tempfile.mkdtemp(prefix="plugattn-aot-")
    try:
        records, log = _run_subprocess(group, cache_dir, script)
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)
    unavailable = [r["unavailable"] for r in records if "unavailable" in r]
    if unavailable:
        pytest.skip(f"ahead-of-time compilation for sm_90 is not available here: {unavailable[0]}")
    compiled = [r for r in records if "config" in r]
    assert compiled, f"the subprocess compiled nothing ({log})"
    failures = [f"{r['config']}: {r['error']}" for r in compiled if not r["ok"]]
    assert not failures, f"{len(failures)} of {len(compiled)} configurations failed:\n" + "\n\n".join(failures)
    for r in compiled:
        assert r["cubin_bytes"] > 0 and r["has_ptx"], r["config"]
        assert r["shared_bytes"] <= H100_MAX_SHARED_BYTES, f"{r['config']} needs {r['shared_bytes']} B of shared memory"
    return compiled


@pytest.mark.slow
@pytest.mark.parametrize("group", GROUPS)
def test_kernels_compile_for_sm90(group: str) -> None:
    compiled = compiled_records(group)
    for r in compiled:
        if group == "simam_eca_se":  # streaming kernels: no spill at all
            assert not r["spill_bytes"], f"{r['config']} spills {r['spill_bytes']} B ({r['registers']} registers)"
    kernels = {r["config"]["kernel"] for r in compiled}
    expected = EXPECTED_KERNELS[group]
    assert kernels == expected, f"compiled {sorted(kernels)}, expected {sorted(expected)}"


EXPECTED_KERNELS = {
    "simam_eca_se": {"_simam_fwd_plane_kernel", "_simam_bwd_plane_kernel", "_simam_stats_kernel",
                     "_simam_fwd_apply_kernel", "_simam_bwd_sums_kernel", "_simam_bwd_apply_kernel",
                     "channel_sums_kernel", "channel_scale_kernel"},
}


if __name__ == "__main__":
    sys.exit(run_group(sys.argv[1]))
