"""Dynamic shapes on the GPU path: tracing an op's ``triton_op`` body with symbolic sizes (what
``torch.compile(dynamic=True)`` does on a GPU) pins no size and guards only on tile buckets.

The CPU custom-op path is covered by each op's ``test_dynamic_shapes_compile_once``; here the body
that a GPU compile decomposes (planner, ``wrap_triton`` launches) is traced on fake CUDA tensors,
without a GPU, by tests/kernels/symbolic_gpu_trace.py in a subprocess without ``TRITON_INTERPRET``.

The guards a trace may add, and why each is needed:

* tile buckets: each tile constexpr comes from a power-of-two bucket of C or H·W, at most two
  range guards per bucketed size (``H·W > 512`` for the largest streaming tile);
* int32 indexing: one bound per feature map on its element count and one on its largest offset;
* SimAM's choice between the fused plane kernels and the split path: one comparison;
* window attention: one range guard per launch decision on the window count (tile height at small
  batch, windows per backward program, the deterministic slices' memory budget); 0-2 measured.

At most :data:`MAX_GUARDS` distinct guards per op and variant (9 measured, ECA's backward channels-last:
its trace keeps separate symbols for grad and x, a compile shares them), none an equality on a size.
Before, every size became a constant (``Eq(s0, 2)``, ... : one graph per shape), and window attention's
GPU path could not be traced at all (its bias tile was built with Python indexing).

Window attention's graph is reused exactly where eager planning picks the same launches: every reused
shape plans as the traced one did (a compiled graph never runs another plan than eager would), and
most shapes that plan the same are reused.
"""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest

from .symbolic_gpu_trace import (MAP_VARIANTS, REUSED, RESULT_PREFIX, TRACED, WINDOW_CASES, WINDOW_VARIANTS,
                                 window_traced)

SCRIPT = Path(__file__).with_name("symbolic_gpu_trace.py")
MAX_GUARDS = 9
OPS = ("se", "se_backward", "eca", "eca_backward", "simam", "simam_backward")
WINDOW_OPS = WINDOW_CASES
OTHER_BATCHES = [[n, *TRACED[1:]] for n in (1, 8)]
CASES = [(op, variant) for op in OPS for variant in MAP_VARIANTS] + [
    (op, variant) for op in WINDOW_OPS for variant in WINDOW_VARIANTS]


@pytest.fixture(scope="module")
def traces() -> Dict[tuple, dict]:
    if importlib.util.find_spec("triton") is None:
        pytest.skip("triton is not installed")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(SCRIPT.parents[2]), env.get("PYTHONPATH", "")]))
    # no timeout: the trace takes what the machine's load makes it take
    done = subprocess.run([sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-4000:]
    records: List[dict] = [json.loads(line[len(RESULT_PREFIX):]) for line in done.stdout.splitlines()
                           if line.startswith(RESULT_PREFIX)]
    return {(r["case"], r["variant"]): r for r in records}


@pytest.mark.parametrize("op, variant", CASES, ids=[f"{op}-{variant}" for op, variant in CASES])
def test_symbolic_trace_pins_no_size(traces, op, variant):
    record = traces[(op, variant)]
    assert record["launches"] >= 1, "the trace holds no Triton launch: the GPU path was not traced"
    assert record["pinned"] == [], f"sizes turned into constants: {record['pinned']}"
    assert len(record["guards"]) <= MAX_GUARDS, "\n".join(record["guards"])
    assert not [g for g in record["guards"] if g.startswith("Eq(")], record["guards"]


@pytest.mark.parametrize("variant", MAP_VARIANTS)
@pytest.mark.parametrize("op", OPS)
def test_other_batch_sizes_reuse_the_graph(traces, op, variant):
    assert all(shape in traces[(op, variant)]["reused"] for shape in OTHER_BATCHES)


@pytest.mark.parametrize("op", [op for op in OPS if not op.startswith("simam")])
def test_squeeze_ops_reuse_the_graph_across_resolutions_and_channels(traces, op):
    # SE and ECA stream H·W > 512 in one tile size; channel counts 33..64 share a bucket
    for variant in MAP_VARIANTS:
        assert traces[(op, variant)]["reused"] == [list(shape) for shape in REUSED]


@pytest.mark.parametrize("variant", WINDOW_VARIANTS)
@pytest.mark.parametrize("op", WINDOW_OPS)
def test_window_graph_is_reused_where_eager_plans_the_same(traces, op, variant):
    record = traces[(op, variant)]
    traced = list(window_traced(op)[:4])
    assert traced in record["reused"], "the traced shape does not satisfy its own guards"
    assert [s for s in record["reused"] if s not in record["same_plan"]] == [], "a reused graph would run another plan"
    assert 2 * len(record["reused"]) >= len(record["same_plan"]) >= 2, (record["reused"], record["same_plan"])
