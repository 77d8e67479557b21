"""SK: Selective Kernel convolution.

Li, Wang, Hu, Yang, "Selective Kernel Networks", CVPR 2019.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn as nn
from einops import rearrange

from .._validate import check_batch_statistics, check_feature_map, check_int, largest_divisor_at_most
from .registry import register_attention

# einops cannot see torch.fx proxies: record rearrange as one opaque call so the module stays traceable
torch.fx.wrap("rearrange")

DEFAULT_GROUPS = 32  # the paper's cardinality (SKNet-50, Table 1)
MIN_ATTENTION_WIDTH = 32  # L in d = max(C / r, L), paper Eq. 4


@register_attention(
    "sk",
    aliases=("sknet", "selective_kernel", "sklayer"),
    paper="Li et al., Selective Kernel Networks",
    venue="CVPR",
    year=2019,
)
class SKLayer(nn.Module):
    """Selective Kernel unit (Li et al., CVPR 2019, Sec. 3.1, Eqs. 1-6).

    Split: M branches, branch m a grouped 3x3 conv with dilation m + 1 (the paper's 5x5 kernel is replaced
    by a dilated 3x3, as the paper itself suggests), each followed by BN and ReLU.
    Fuse: U = sum_m U_m (Eq. 1), s = GAP(U) (Eq. 2), z = ReLU(BN(W s)) with W: C -> d,
    d = max(C / r, L), L = 32 (Eqs. 3-4).
    Select: a_m = softmax over the M branches of A_m z, A_m: d -> C (Eq. 5, no bias as in the paper;
    the M matrices are stored stacked in one 1x1 conv d -> M*C), V = sum_m a_m * U_m (Eq. 6).

    Unlike the other attention modules this is a convolution: ``planes != inplanes`` or ``stride != 1``
    change the output shape, which is allowed for use as a building block. Built from a channel count
    alone (the registry factory), it maps (B, C, H, W) -> (B, C, H, W).

    ``groups=None`` (default) uses the paper's 32 groups, lowered to the largest divisor of both
    ``inplanes`` and ``planes`` that is <= 32 (so ``SKLayer(48)`` uses 24 groups); an explicit
    ``groups`` must divide both, else ValueError.
    As in the paper, z goes through BatchNorm on a (B, d, 1, 1) tensor, so training needs a batch of at
    least 2: batch 1 in train mode raises a ValueError saying so (eval mode is fine).
    Parameters (bias-free convs, BN affine): M*(planes*inplanes/G*9 + 2*planes) + (planes*d + 2d) + d*M*planes.

    Args:
        inplanes: input channels C.
        planes: output channels (default: ``inplanes``).
        groups: G, see above.
        ratio: r in d = max(planes / r, L).
        stride: stride of every branch conv.
        M: number of branches (>= 2 for a selection to mean anything; 1 is allowed).

    Example:
        >>> SKLayer(64)(torch.randn(2, 64, 8, 8)).shape
        torch.Size([2, 64, 8, 8])
    """

    def __init__(
        self,
        inplanes: int,
        planes: Optional[int] = None,
        groups: Optional[int] = None,
        ratio: int = 16,
        stride: int = 1,
        M: int = 2,
    ) -> None:
        super().__init__()
        self.inplanes = check_int("inplanes", inplanes)
        planes = inplanes if planes is None else check_int("planes", planes)
        self.planes = planes
        check_int("ratio", ratio)
        check_int("stride", stride)
        self.M = check_int("M", M)
        if groups is None:
            groups = largest_divisor_at_most(math.gcd(inplanes, planes), DEFAULT_GROUPS)
        else:
            check_int("groups", groups)
            if inplanes % groups != 0 or planes % groups != 0:
                raise ValueError(
                    f"groups must divide inplanes and planes, got groups={groups}, inplanes={inplanes}, "
                    f"planes={planes} (leave groups=None to pick the largest divisor <= {DEFAULT_GROUPS})"
                )
        self.groups = groups
        attention_width = max(planes // ratio, MIN_ATTENTION_WIDTH)
        self.attention_width = attention_width

        self.branches = nn.ModuleList()
        for index in range(M):
            dilation = index + 1
            self.branches.append(
                nn.Sequential(
                    nn.Conv2d(
                        inplanes,
                        planes,
                        kernel_size=3,
                        stride=stride,
                        padding=dilation,
                        dilation=dilation,
                        groups=groups,
                        bias=False,
                    ),
                    nn.BatchNorm2d(planes),
                    nn.ReLU(inplace=True),
                )
            )
        self.squeeze = nn.Sequential(
            nn.Conv2d(planes, attention_width, kernel_size=1, bias=False),
            nn.BatchNorm2d(attention_width),
            nn.ReLU(inplace=True),
        )
        self.select = nn.Conv2d(attention_width, M * planes, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_feature_map(x, self.inplanes, "SKLayer")
        if not torch.jit.is_scripting():  # TorchScript cannot compile the message-building check
            check_batch_statistics("SKLayer", x, [(self.squeeze[1], (0,))])  # z: (B, d, 1, 1)
        features = torch.stack([branch(x) for branch in self.branches], dim=1)  # (B, M, P, H', W')
        fused = features.sum(dim=1)  # Eq. 1, (B, P, H', W')
        descriptor = self.squeeze(fused.mean(dim=(2, 3), keepdim=True))  # Eqs. 2-3, (B, d, 1, 1)
        if torch.jit.is_scripting():  # TorchScript cannot compile einops
            logits = self.select(descriptor).unflatten(1, (self.M, -1))  # (B, M, P, 1, 1)
        else:
            logits = rearrange(self.select(descriptor), "b (m p) 1 1 -> b m p 1 1", m=self.M)
        weights = torch.softmax(logits, dim=1)  # Eq. 5: softmax across branches
        return (weights * features).sum(dim=1)  # Eq. 6, (B, P, H', W')

