"""Multiply-adds of a forward pass: plugattn's one counter (``plugattn inject``, the backbone GMACs).

It is PyTorch's ``torch.utils.flop_counter.FlopCounterMode`` (MACs = FLOPs / 2), which counts
convolutions (and their transposes), matrix multiplies (``mm``, ``addmm``, ``bmm``, ``baddbmm``) and
scaled-dot-product attention on the GPU kernels. Two gaps of PyTorch's tables are filled here, once, at
import:

* scaled-dot-product attention on the CPU (``aten._scaled_dot_product_flash_attention_for_cpu`` and its
  backward), which PyTorch counts as 0: the same formula as PyTorch's GPU SDPA entries, ``Q K^T`` plus
  ``A V`` (2 x 2 b h n m d FLOPs; causal masks not discounted, as PyTorch does);
* FFTs (``aten._fft_r2c``, ``_fft_c2r``, ``_fft_c2c``), which PyTorch counts as 0: the usual radix-2
  estimate, ``5 N log2 N`` real FLOPs for a complex transform of N points (the convention of FFTW's
  benchmarks), half of it, ``2.5 N log2 N``, for a real-to-complex or complex-to-real one; N is the
  product of the transformed sizes (the full real length for ``c2r``), counted once per batch entry.

Everything else -- elementwise ops, pooling, normalisation, activations, gates -- counts zero. So SimAM,
which is all elementwise, adds 0 MACs by this measure; ECA adds its 1-D channel convolution.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn as nn
from torch.utils import flop_counter
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["MAC_COUNTING_NOTE", "count_macs", "fft_flops"]

MAC_COUNTING_NOTE = (
    "multiply-adds: torch.utils.flop_counter.FlopCounterMode (FLOPs / 2) with plugattn's formulas for CPU "
    "scaled-dot-product attention and FFTs (5 N log2 N FLOPs per complex transform); it counts convolutions, "
    "matrix multiplies, attention and FFTs only - elementwise ops, pooling, normalisation and gates count zero"
)

aten = torch.ops.aten


def fft_flops(shape: Sequence[int], dims: Sequence[int], real: bool) -> int:
    """FLOPs of an FFT over ``dims`` of a tensor of ``shape``: 5 N log2 N per transform of N points,
    halved for real-to-complex / complex-to-real transforms, times the number of transforms.

    Example:
        >>> fft_flops((4, 8), dims=(1,), real=False)  # 4 transforms of 8 points: 4 * 5 * 8 * 3
        480
    """
    points = math.prod(int(shape[d]) for d in dims)
    if points <= 1:
        return 0
    transforms = math.prod(int(s) for s in shape) // points
    per_transform = 5 * points * math.log2(points) * (0.5 if real else 1.0)
    return int(round(transforms * per_transform))


def _register(targets, formula) -> None:
    """Register ``formula`` for the ops of ``targets`` PyTorch has none for (so a PyTorch that adds one
    keeps its own)."""
    missing = [t for t in targets if t not in flop_counter.flop_registry]
    if missing:
        flop_counter.register_flop_formula(missing)(formula)


def _sdpa_cpu_flop(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape)


def _sdpa_cpu_backward_flop(grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None,
                            **kwargs) -> int:
    return flop_counter.sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)


def _fft_r2c_flop(self_shape, dim, normalization, onesided, *, out_shape=None, **kwargs) -> int:
    return fft_flops(self_shape, dim, real=True)  # N: the real input's sizes


def _fft_c2r_flop(self_shape, dim, normalization, last_dim_size, *, out_shape=None, **kwargs) -> int:
    return fft_flops(out_shape, dim, real=True)  # N: the real output's sizes (the half spectrum is the input)


def _fft_c2c_flop(self_shape, dim, normalization, forward, *, out_shape=None, **kwargs) -> int:
    return fft_flops(self_shape, dim, real=False)


_register([aten._scaled_dot_product_flash_attention_for_cpu], _sdpa_cpu_flop)
_register([aten._scaled_dot_product_flash_attention_for_cpu_backward], _sdpa_cpu_backward_flop)
_register([aten._fft_r2c], _fft_r2c_flop)
_register([aten._fft_c2r], _fft_c2r_flop)
_register([aten._fft_c2c], _fft_c2c_flop)


def count_macs(model: nn.Module, example: torch.Tensor) -> int:
    """Multiply-adds of one inference forward pass on ``example`` (FlopCounterMode FLOPs / 2).

    Runs with the PyTorch backend so the counter sees the reference ops that the fused kernels replace
    (a Triton kernel is opaque to it). ``example`` (and the model) may live on the ``meta`` device: the
    formulas only read shapes, so nothing is computed or allocated.

    Example:
        >>> count_macs(nn.Linear(3, 2), torch.randn(1, 3))
        6
    """
    from .kernels.dispatch import use_backend  # the kernels package is only needed when counting

    was_training = model.training
    # FlopCounterMode's module tracker hooks the autograd graph of every module input that requires grad,
    # and fails under no_grad on a parameter passed as an input (PiT's class token): count with gradients off
    wanted_grad = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    try:
        for parameter, _ in wanted_grad:
            parameter.requires_grad_(False)
        with torch.no_grad(), use_backend("torch"), FlopCounterMode(display=False) as counter:
            model(example)
    finally:
        model.train(was_training)
        for parameter, requires_grad in wanted_grad:
            parameter.requires_grad_(requires_grad)
    return counter.get_total_flops() // 2
