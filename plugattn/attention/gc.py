"""GC block: Global Context block of GCNet.

Cao, Xu, Lin, Wei, Hu, "GCNet: Non-local Networks Meet Squeeze-Excitation Networks and Beyond",
ICCV Workshops 2019.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from einops import rearrange

from .._validate import check_choice, check_feature_map, check_int
from .registry import register_attention

# einops cannot see torch.fx proxies: record rearrange as one opaque call so the module stays traceable
torch.fx.wrap("rearrange")


@register_attention(
    "gc",
    aliases=("gcnet", "global_context", "gcmodule"),
    paper="Cao et al., GCNet: Non-local Networks Meet Squeeze-Excitation Networks and Beyond",
    venue="ICCVW",
    year=2019,
)
class GCModule(nn.Module):
    """Global Context block (Cao et al., ICCVW 2019, Sec. 4.2, Eq. 3 / Fig. 4d).

    Context modelling: weights = softmax over the H*W positions of W_k x (a 1x1 conv C -> 1), and
    context = sum_j weights_j * x_j, a (B, C, 1, 1) vector.
    Transform: W_v2 ReLU(LN(W_v1 context)) with W_v1: C -> C/r, LayerNorm over [C/r, 1, 1], W_v2: C/r -> C.
    Fusion: "add" (paper default) out = x + t; "mul" out = x * sigmoid(t).

    W_v2 is zero-initialised as the official code, so with add fusion the block starts as the identity;
    with mul fusion it starts as x * sigmoid(0) = x / 2. Deviations from the official code: W_k has no
    bias (a constant added before a softmax cancels, so it could never learn). The classic
    ``pytorch-attention`` GCModule omits the softmax; this one follows Eq. 3.
    Hidden width h = max(1, C // r); at h = 1 the LayerNorm of a single value is always 0, so the transform
    no longer depends on the input: keep C // r >= 2 (e.g. lower ``reduction`` for very thin layers).
    Parameters: C (W_k) + (C*h + h) + 2h (LN) + (h*C + C), h = max(1, C // r).

    Args:
        channel: C.
        reduction: r, the bottleneck ratio (paper: 16).
        fusion: "add" or "mul".

    Example:
        >>> gc = GCModule(64)
        >>> x = torch.randn(2, 64, 8, 8)
        >>> torch.equal(gc(x), x)  # identity at init (add fusion)
        True
    """

    def __init__(self, channel: int, reduction: int = 16, fusion: str = "add") -> None:
        super().__init__()
        self.channel = check_int("channel", channel)
        check_int("reduction", reduction)
        self.fusion = check_choice("fusion", fusion, ["add", "mul"])
        hidden = max(1, channel // reduction)
        self.hidden_channels = hidden
        self.conv_mask = nn.Conv2d(channel, 1, kernel_size=1, bias=False)
        self.transform = nn.Sequential(
            nn.Conv2d(channel, hidden, kernel_size=1),
            nn.LayerNorm([hidden, 1, 1]),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channel, kernel_size=1),
        )
        nn.init.kaiming_normal_(self.conv_mask.weight, mode="fan_in", nonlinearity="relu")
        nn.init.zeros_(self.transform[-1].weight)
        nn.init.zeros_(self.transform[-1].bias)

    def context(self, x: torch.Tensor) -> torch.Tensor:
        """Attention-pooled global context, (B, C, H, W) -> (B, C, 1, 1)."""
        logits = rearrange(self.conv_mask(x), "b 1 h w -> b (h w) 1")  # (B, HW, 1)
        weights = torch.softmax(logits, dim=1)  # softmax over positions
        values = rearrange(x, "b c h w -> b c (h w)")  # (B, C, HW)
        pooled = torch.bmm(values, weights)  # (B, C, 1)
        return rearrange(pooled, "b c 1 -> b c 1 1")

    def _context_scriptable(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`context` without einops, for TorchScript (tested equal)."""
        logits = self.conv_mask(x).flatten(2).transpose(1, 2)  # (B, 1, H, W) -> (B, HW, 1)
        pooled = torch.bmm(x.flatten(2), torch.softmax(logits, dim=1))  # (B, C, HW) @ (B, HW, 1) -> (B, C, 1)
        return pooled.unsqueeze(-1)  # (B, C, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_feature_map(x, self.channel, "GCModule")
        if torch.jit.is_scripting():  # TorchScript cannot compile einops
            context = self._context_scriptable(x)
        else:
            context = self.context(x)
        term = self.transform(context)  # (B, C, 1, 1)
        if self.fusion == "add":
            return x + term
        return x * torch.sigmoid(term)
