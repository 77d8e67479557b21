"""Fused (shifted) window attention of the Swin Transformer on the packed qkv tensor.

Paper: Liu, Lin, Cao, Hu, Wei, Zhang, Lin, Guo, "Swin Transformer: Hierarchical Vision Transformer
using Shifted Windows", ICCV 2021. Eq. (4): for every window and head,

    Attention(Q, K, V) = SoftMax(Q·Kᵀ/√d + B) · V,

with B gathered from the relative position bias table B̂ of shape ((2M−1)², heads) by the
relative offset of the two tokens (Sec. 3.2), and, for the shifted configuration (SW-MSA, Sec. 3.2
"Efficient batch computation for shifted configuration"), a cyclic shift of the map by
``shift_size`` towards the top-left plus a mask M that stops tokens from different sub-windows
of a merged window attending to each other.

**Mask convention.** As in the official code and timm, M is −100 (not −inf) between tokens of
different regions and 0 within a region; a row is never fully masked, so no NaN can arise.

**Padding convention.** When H or W is not a multiple of the window M, the map is cyclically
shifted over its real H×W extent first and then zero-padded at the bottom/right; the padded tokens
enter the attention with q = k = v = 0 (keys whose logit is just B + M, values 0), and their outputs
are dropped. This is timm's ``SwinTransformerBlock`` on a map padded before a bias-free qkv
projection; with a qkv bias, timm's padded tokens carry the bias instead.

Files, in the order of one op (the project's pattern):

* :mod:`.reference` - argument checks, index, mask, dense bias, the PyTorch reference;
* :mod:`.kernels` - the ``@triton.jit`` forward and backward kernels;
* :mod:`.launcher` - the planner (``launch_plan("window_attention", (B, H, W, C, heads, window,
  shift))``: the forward launch, then the backward), the dense bias tile and the launchers;
* :mod:`.op` - ``torch.ops.plugattn.window_attention`` / ``window_attention_backward``
  (``triton_op`` on GPUs), autograd and the public :func:`window_attention`.

What runs: one forward kernel (q, k, v read from the one qkv tensor, the output written at its source
pixels, softmax in base 2 with log₂e folded into the scale and the bias tile) and one backward kernel
writing one ∂qkv tensor and ∂B (summed over windows; deterministic under
``torch.use_deterministic_algorithms(True)``); the table gradient is autograd's scatter of ∂B.

Example:
    >>> qkv = torch.randn(1, 9, 9, 3 * 32)
    >>> window_attention(qkv, torch.zeros(49, 1), 4, 2).shape
    torch.Size([1, 9, 9, 32])
"""
import torch  # noqa: F401  (doctest namespace)

from .launcher import (
    MAX_TRITON_HEAD_DIM,
    MAX_TRITON_WINDOW,
    full_shape,
    key_pieces,
    launch_backward,
    launch_forward,
    plan_backward,
    plan_forward,
    plan_window_attention,
    triton_unsupported_reason,
)
from .op import window_attention, window_attention_backward_op, window_attention_op
from .reference import (
    MASK_VALUE,
    relative_position_index,
    shifted_window_mask,
    table_window,
    window_attention_reference,
    window_bias,
)

__all__ = [
    "MASK_VALUE",
    "MAX_TRITON_HEAD_DIM",
    "MAX_TRITON_WINDOW",
    "full_shape",
    "key_pieces",
    "launch_backward",
    "launch_forward",
    "plan_backward",
    "plan_forward",
    "plan_window_attention",
    "relative_position_index",
    "shifted_window_mask",
    "table_window",
    "triton_unsupported_reason",
    "window_attention",
    "window_attention_backward_op",
    "window_attention_op",
    "window_attention_reference",
    "window_bias",
]
