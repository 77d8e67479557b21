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

Every size of x is symbolic; so are SE's weight sizes, and the guards equating them with x's channel
count are listed apart (``unified``): they relate two symbols and pin nothing. Window attention's qkv
(B, H, W, 3C) has B, H and W symbolic, and C static, as in a compile, where it is the output width of
the block's qkv Linear (parameters' sizes are static); its dense bias (heads, N, N), gathered from the
table parameter, is static too. Its variants are dtypes (the plan depends on the tl.dot engine) and
deterministic mode (private bias-gradient slices), at Swin-T stage 1 (window 7, shifted) and a
Swin-B/384-like stage (window 12: several query blocks).

The ops' launchers use operator calls only (no Python indexing, ``.contiguous()`` or ``.to()``,
whose Python bindings set the CUDA device and so fail here without a driver).

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
MAP_VARIANTS = ("contiguous", "channels_last")
WINDOW_VARIANTS = ("float32", "bfloat16", "bfloat16+deterministic")
# (N, C, H, W) traced, then shapes that must reuse the graph (batch and resolution vary; C stays in its
# power-of-two bucket, H*W in its tile bucket: large maps share the largest tile)
TRACED = (2, 64, 56, 56)
REUSED = ((1, 64, 56, 56), (8, 64, 56, 56), (64, 64, 40, 40), (3, 40, 64, 48), (2, 64, 112, 112))
# window attention: (B, H, W, 3C, heads, window, shift) traced; the (B, H, W) checked for reuse are
# every batch of WINDOW_BATCHES on each map of the case (the traced one first)
WINDOW_TRACED = {"window_attention": (2, 56, 56, 288, 3, 7, 3), "window_attention_12": (2, 24, 36, 384, 4, 12, 6)}
WINDOW_MAPS = {"window_attention": ((56, 56), (49, 63), (28, 28)), "window_attention_12": ((24, 36), (25, 37), (48, 48))}
WINDOW_BATCHES = (1, 2, 3, 8, 64, 128)
WINDOW_CASES = tuple(f"{traced}{suffix}" for traced in WINDOW_TRACED for suffix in ("", "_backward"))


def _forward_case(case: str) -> str:
    return case[: -len("_backward")] if case.endswith("_backward") else case


def window_traced(case: str) -> Tuple[int, ...]:
    """The traced (B, H, W, 3C, heads, window, shift) of a window case (forward or backward)."""
    return WINDOW_TRACED[_forward_case(case)]


def _variant_dtype(variant: str) -> Any:
    import torch

    return getattr(torch, variant.split("+")[0])


@contextlib.contextmanager
def _deterministic_as(variant: str):
    """``torch.use_deterministic_algorithms`` as the variant says, restored afterwards."""
    import torch

    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(variant.endswith("+deterministic"))
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)


def _fake_cuda(mode: Any, shape: Sequence[int], dynamic: Any, channels_last: bool = False,
               dtype: Any = None) -> Any:
    """A fake CUDA tensor of ``shape``: every size symbolic (``dynamic`` True) or static (False), or
    per dimension (a sequence of bools)."""
    import torch
    from torch._subclasses.fake_tensor import FakeTensor, in_kernel_invocation_manager
    from torch.fx.experimental.symbolic_shapes import DimDynamic, StatelessSymbolicContext

    real = torch.empty(shape, dtype=dtype or torch.float32)
    if channels_last:
        real = real.contiguous(memory_format=torch.channels_last)
    per_dim = dynamic if isinstance(dynamic, (list, tuple)) else [dynamic] * len(shape)
    context = StatelessSymbolicContext(dynamic_sizes=[DimDynamic.DYNAMIC if d else DimDynamic.STATIC for d in per_dim])
    cpu = mode.from_tensor(real, symbolic_context=context)
    with in_kernel_invocation_manager(mode):
        meta = torch.empty_strided(cpu.shape, cpu.stride(), dtype=cpu.dtype, device="meta")
    return FakeTensor(mode, meta, torch.device("cuda", 0))


def _cases() -> Dict[str, Tuple[Callable, Callable]]:
    """case -> (op call, inputs(mode, variant) -> (args, x)); x's symbols are the sizes checked for reuse."""
    import torch

    ops = torch.ops.plugattn

    def feature_maps(mode, variant, count):
        return [_fake_cuda(mode, TRACED, True, variant == "channels_last") for _ in range(count)]

    def se_inputs(mode, variant, backward):
        maps = feature_maps(mode, variant, 2 if backward else 1)
        c = TRACED[1]
        w1, b1 = _fake_cuda(mode, (c // 16, c), True), _fake_cuda(mode, (c // 16,), True)
        w2, b2 = _fake_cuda(mode, (c, c // 16), True), _fake_cuda(mode, (c,), True)
        return (*maps, w1, b1, w2, b2, None, "relu", "sigmoid"), maps[-1]

    def eca_inputs(mode, variant, backward):
        maps = feature_maps(mode, variant, 2 if backward else 1)
        return (*maps, _fake_cuda(mode, (1, 1, 3), False), None), maps[-1]

    def simam_inputs(mode, variant, backward):
        maps = feature_maps(mode, variant, 2 if backward else 1)
        return (*maps, 1e-4, None), maps[-1]

    def window_inputs(mode, variant, case):
        batch, height, width, three_c, heads, window, shift = window_traced(case)
        dtype = _variant_dtype(variant)
        qkv = _fake_cuda(mode, (batch, height, width, three_c), (True, True, True, False), dtype=dtype)
        bias = _fake_cuda(mode, (heads, window * window, window * window), False)
        head_dim = three_c // (3 * heads)
        args = (qkv, bias, window, shift, head_dim ** -0.5)
        if case.endswith("_backward"):
            args = (_fake_cuda(mode, (batch, height, width, three_c // 3), (True, True, True, False), dtype=dtype),) + args
        return args, qkv

    return {
        "se": (ops.se, lambda m, cl: se_inputs(m, cl, False)),
        "se_backward": (ops.se_backward, lambda m, cl: se_inputs(m, cl, True)),
        "eca": (ops.eca, lambda m, cl: eca_inputs(m, cl, False)),
        "eca_backward": (ops.eca_backward, lambda m, cl: eca_inputs(m, cl, True)),
        "simam": (ops.simam, lambda m, cl: simam_inputs(m, cl, False)),
        "simam_backward": (ops.simam_backward, lambda m, cl: simam_inputs(m, cl, True)),
        **{case: (ops.window_attention_backward if case.endswith("_backward") else ops.window_attention,
                  lambda m, v, case=case: window_inputs(m, v, case))
           for case in WINDOW_CASES},
    }


def variants(case: str) -> Tuple[str, ...]:
    """What a case is traced in: layouts for feature-map ops, dtypes and deterministic mode for windows."""
    return WINDOW_VARIANTS if case.startswith("window_attention") else MAP_VARIANTS


def reused_shapes(case: str) -> List[List[int]]:
    """The shapes a case checks for graph reuse, as x's full shape (window attention: qkv's)."""
    if not case.startswith("window_attention"):
        return [list(s) for s in REUSED]
    three_c = window_traced(case)[3]
    return [[batch, *hw, three_c] for hw in WINDOW_MAPS[_forward_case(case)] for batch in WINDOW_BATCHES]


def window_plan(case: str, variant: str, qkv_shape: Sequence[int]) -> List[Any]:
    """What the eager planner picks for a window case at a qkv shape: each launch's constexprs and warps."""
    from plugattn.kernels import plan
    from plugattn.kernels.window_attention_kernel import launcher

    _, _, _, three_c, heads, window, shift = window_traced(case)
    planner = launcher.plan_backward if case.endswith("_backward") else launcher.plan_forward
    with _deterministic_as(variant):
        launches = planner((*qkv_shape[:3], three_c // 3, heads, window, shift), _variant_dtype(variant), False,
                           plan.DEVICES["h100"])
    return [[sorted(launch.constexprs.items()), launch.num_warps] for launch in launches]


def trace(case: str, variant: str) -> Dict[str, Any]:
    """Trace one op's functional decomposition on symbolic fake CUDA inputs; what the trace guarded."""
    import torch
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch._subclasses.functional_tensor import dispatch_functionalize
    from torch.fx.experimental.proxy_tensor import make_fx
    from torch.fx.experimental.symbolic_shapes import ShapeEnv

    from plugattn.kernels.plan import size_hint

    op, make_inputs = _cases()[case]
    shape_env = ShapeEnv()
    mode = FakeTensorMode(shape_env=shape_env)
    args, x = make_inputs(mode, variant)
    # x's size symbols -> dimension
    symbols = {str(size.node.expr): i for i, size in enumerate(x.shape) if isinstance(size, torch.SymInt)}
    # a compile holds torch.compiler.is_compiling() true through AOTAutograd (no eager caches are filled)
    session = getattr(torch.compiler, "_compile_session_context", contextlib.nullcontext)
    with _deterministic_as(variant), mode, session():
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

    record = {"case": case, "variant": variant, "guards": [str(g) for g in guards],
              "unified": [str(g) for g in unified],
              "pinned": pinned, "launches": launches, "reused": [s for s in reused_shapes(case) if holds(s)]}
    if case.startswith("window_attention"):
        # the shapes for which eager planning picks the traced launches: a reused graph must be one of them
        traced_plan = window_plan(case, variant, [size_hint(s) for s in x.shape])
        record["same_plan"] = [s for s in reused_shapes(case) if window_plan(case, variant, s) == traced_plan]
    return record


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
        for variant in variants(case):
            print(RESULT_PREFIX + json.dumps(trace(case, variant)), flush=True)


if __name__ == "__main__":
    main()
