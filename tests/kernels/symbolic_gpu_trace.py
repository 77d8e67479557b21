"""Traces each op's GPU path (its ``triton_op`` body) with symbolic sizes, without a GPU; run as a script.

Under ``torch.compile(dynamic=True)`` on a GPU, AOTAutograd functionalizes the graph with fake tensors
whose sizes are symbols, and a ``triton_op`` is decomposed there: its Python body (planner, launches via
``wrap_triton``) runs on those fakes, so every size the planner turns into a Python int becomes a guard
pinning that size (and a recompile per shape). This script does the same trace on fake *CUDA* tensors:

* ``torch.cuda.is_available`` is patched before plugattn is imported, so the ops register as
  ``triton_op`` s (as on a GPU; needs a run without ``TRITON_INTERPRET``, which turns kernels into
  interpreter functions that ``wrap_triton`` passes through untraced);
* fake CUDA tensors are built directly (``FakeTensor(mode, meta, cuda:0)``: no CUDA call), the planners
  see an H100 (the device spec of ``cuda:0`` is pre-filled);
* ``make_fx`` over ``dispatch_functionalize`` runs the op's functional decomposition, as AOTAutograd does.

Window attention is not traced: its launcher indexes and copies into fake CUDA tensors (the bias
tile), which calls into the CUDA runtime here and fails without a GPU.

Every size of x is symbolic; so are SE's weight sizes, and the guards equating them with x's channel
count are listed apart (``unified``): they relate two symbols and pin nothing.

``python tests/kernels/symbolic_gpu_trace.py`` prints one JSON line per case (prefix ``TRACE ``): the
guards the trace added, the sizes it turned into constants, how many Triton launches the graph holds,
and which other shapes satisfy every guard (those reuse the one graph).
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from typing import Any, Callable, Dict, List, Sequence, Tuple

RESULT_PREFIX = "TRACE "
# (N, C, H, W) traced, then shapes that must reuse the graph (batch and resolution vary; C stays in its
# power-of-two bucket, H*W in its tile bucket: large maps share the largest tile)
TRACED = (2, 64, 56, 56)
REUSED = ((1, 64, 56, 56), (8, 64, 56, 56), (64, 64, 40, 40), (3, 40, 64, 48), (2, 64, 112, 112))


def _fake_cuda(mode: Any, shape: Sequence[int], dynamic: bool, channels_last: bool = False) -> Any:
    """A fake CUDA tensor of ``shape``, every size symbolic (``dynamic``) or static."""
    import torch
    from torch._subclasses.fake_tensor import FakeTensor, in_kernel_invocation_manager
    from torch.fx.experimental.symbolic_shapes import DimDynamic, StatelessSymbolicContext

    real = torch.empty(shape)
    if channels_last:
        real = real.contiguous(memory_format=torch.channels_last)
    context = StatelessSymbolicContext(dynamic_sizes=[DimDynamic.DYNAMIC if dynamic else DimDynamic.STATIC] * len(shape))
    cpu = mode.from_tensor(real, symbolic_context=context)
    with in_kernel_invocation_manager(mode):
        meta = torch.empty_strided(cpu.shape, cpu.stride(), device="meta")
    return FakeTensor(mode, meta, torch.device("cuda", 0))


def _cases() -> Dict[str, Tuple[Callable, Callable]]:
    """case -> (op call, inputs(mode, channels_last) -> (args, x))."""
    import torch

    ops = torch.ops.plugattn

    def feature_maps(mode, channels_last, count):
        return [_fake_cuda(mode, TRACED, True, channels_last) for _ in range(count)]

    def se_inputs(mode, channels_last, backward):
        maps = feature_maps(mode, channels_last, 2 if backward else 1)
        c = TRACED[1]
        w1, b1 = _fake_cuda(mode, (c // 16, c), True), _fake_cuda(mode, (c // 16,), True)
        w2, b2 = _fake_cuda(mode, (c, c // 16), True), _fake_cuda(mode, (c,), True)
        return (*maps, w1, b1, w2, b2, None, "relu", "sigmoid"), maps[-1]

    def eca_inputs(mode, channels_last, backward):
        maps = feature_maps(mode, channels_last, 2 if backward else 1)
        return (*maps, _fake_cuda(mode, (1, 1, 3), False), None), maps[-1]

    def simam_inputs(mode, channels_last, backward):
        maps = feature_maps(mode, channels_last, 2 if backward else 1)
        return (*maps, 1e-4, None), maps[-1]

    return {
        "se": (ops.se, lambda m, cl: se_inputs(m, cl, False)),
        "se_backward": (ops.se_backward, lambda m, cl: se_inputs(m, cl, True)),
        "eca": (ops.eca, lambda m, cl: eca_inputs(m, cl, False)),
        "eca_backward": (ops.eca_backward, lambda m, cl: eca_inputs(m, cl, True)),
        "simam": (ops.simam, lambda m, cl: simam_inputs(m, cl, False)),
        "simam_backward": (ops.simam_backward, lambda m, cl: simam_inputs(m, cl, True)),
    }


def trace(case: str, channels_last: bool) -> Dict[str, Any]:
    """Trace one op's functional decomposition on symbolic fake CUDA inputs; what the trace guarded."""
    import torch
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch._subclasses.functional_tensor import dispatch_functionalize
    from torch.fx.experimental.proxy_tensor import make_fx
    from torch.fx.experimental.symbolic_shapes import ShapeEnv

    op, make_inputs = _cases()[case]
    shape_env = ShapeEnv()
    mode = FakeTensorMode(shape_env=shape_env)
    args, x = make_inputs(mode, channels_last)
    # x's size symbols -> dimension
    symbols = {str(size.node.expr): i for i, size in enumerate(x.shape) if isinstance(size, torch.SymInt)}
    # a compile holds torch.compiler.is_compiling() true through AOTAutograd (no eager caches are filled)
    session = getattr(torch.compiler, "_compile_session_context", contextlib.nullcontext)
    with mode, session():
        graph = make_fx(dispatch_functionalize(lambda *a: op(*a)), tracing_mode="real")(*args)
    launches = sum("triton_kernel_wrapper" in str(node.target) for node in graph.graph.nodes)
    distinct = sorted({str(g.expr): g.expr for g in shape_env.guards if str(g.expr) != "True"}.items())
    # Eq(weight size, x size): SE's weights get symbols of their own here (a compile's parameters do not)
    unified = [expr for _, expr in distinct if expr.is_Equality and all(a.is_Symbol for a in expr.args)]
    guards = [expr for _, expr in distinct if expr not in unified]
    pinned = sorted(str(s) for s, value in shape_env.replacements.items() if value.is_number)

    def holds(shape: Sequence[int]) -> bool:
        """Whether x of ``shape`` satisfies every guard (other sizes, e.g. SE's hidden width, as traced)."""
        traced = getattr(shape_env, "backed_var_to_val", None) or shape_env.var_to_val

        def value(symbol):
            return shape[symbols[str(symbol)]] if str(symbol) in symbols else traced[symbol]
        return all(bool(expr.subs({s: value(s) for s in expr.free_symbols})) for expr in guards)

    return {"case": case, "channels_last": channels_last, "guards": [str(g) for g in guards],
            "unified": [str(g) for g in unified],
            "pinned": pinned, "launches": launches, "reused": [list(s) for s in REUSED if holds(s)]}


def main() -> None:
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        raise SystemExit("run without TRITON_INTERPRET: the interpreter's kernels are not traced by wrap_triton")
    import torch

    torch.cuda.is_available = lambda: True  # register the ops as triton_op, as on a GPU
    from plugattn.kernels import _common, plan

    _common._CUDA_SPECS[0] = plan.DEVICES["h100"]
    # triton's mutation analysis needs a CUDA driver; without one torch assumes every input mutated
    logging.getLogger("torch._higher_order_ops.triton_kernel_wrap").setLevel(logging.ERROR)
    cases = sys.argv[1:] or list(_cases())
    for case in cases:
        for channels_last in (False, True):
            print(RESULT_PREFIX + json.dumps(trace(case, channels_last)), flush=True)


if __name__ == "__main__":
    main()
