"""Patch embedding: the strided convolution that turns an image (or a stage's map) into patch features,
with an optional norm and the output layout the model works in.

ViT (Dosovitskiy et al., ICLR 2021, Sec. 3.1) projects non-overlapping P x P patches with a linear map
E, i.e. a P x P convolution of stride P; the hierarchical models reuse it between stages (PVT, Wang et
al., ICCV 2021, Sec. 3.1; Swin, Liu et al., ICCV 2021, Sec. 3.1, with a LayerNorm after it) or make the
patches overlap (kernel > stride: P2T, CycleMLP), and DilateFormer (Jiao et al., TMM 2023) uses a stack
of 3x3 convolutions. One class covers them all; its submodules are named ``proj`` and ``norm`` as in
timm and the official codes, so their checkpoints load by name.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..._validate import check_choice, check_int
from .norms import NormLayer

# output layouts: the (B, C, h, w) map, channels-last (B, h, w, C), or flattened tokens (B, h*w, C)
LAYOUTS = ("nchw", "nhwc", "tokens")


class PatchEmbed(nn.Module):
    """``proj`` (a ``patch_size`` x ``patch_size`` convolution, stride ``stride`` -- default ``patch_size``,
    i.e. non-overlapping patches -- and zero ``padding``), then ``norm`` in the output ``layout``:

    * ``"nchw"``: (B, embed_dim, h, w); ``norm_layer`` must normalise maps (``LayerNorm2d``,
      ``nn.BatchNorm2d``, ``partial(nn.GroupNorm, 1)``);
    * ``"nhwc"``: (B, h, w, embed_dim) and ``"tokens"``: (B, h * w, embed_dim); ``norm_layer`` acts on
      the last dimension (``nn.LayerNorm``).

    ``norm_layer`` is a callable ``embed_dim -> nn.Module``; ``None`` leaves ``norm`` an identity (no
    parameters). ``pad_input`` zero-pads H, W at the bottom / right up to multiples of the stride first
    (Swin's patch partition of any input size). ``proj`` replaces the convolution by a given module
    (DilateFormer's convolution stem); give either it or ``patch_size``.

    Example:
        >>> PatchEmbed(3, 32, 16)(torch.randn(1, 3, 64, 64)).shape  # ViT: 16x16 patches
        torch.Size([1, 32, 4, 4])
        >>> PatchEmbed(3, 96, 4, norm_layer=nn.LayerNorm, layout="nhwc", pad_input=True)(
        ...     torch.randn(1, 3, 30, 32)).shape  # Swin
        torch.Size([1, 8, 8, 96])
        >>> PatchEmbed(3, 64, 7, stride=4, padding=2, layout="tokens")(torch.randn(1, 3, 32, 32)).shape
        torch.Size([1, 64, 64])
    """

    def __init__(
        self,
        in_chans: int,
        embed_dim: int,
        patch_size: Optional[int] = None,
        stride: Optional[int] = None,
        padding: int = 0,
        norm_layer: Optional[NormLayer] = None,
        layout: str = "nchw",
        pad_input: bool = False,
        proj: Optional[nn.Module] = None,
    ) -> None:
        super().__init__()
        check_int("in_chans", in_chans)
        check_int("embed_dim", embed_dim)
        check_choice("layout", layout, LAYOUTS)
        if norm_layer is not None and not callable(norm_layer):
            raise TypeError(f"norm_layer must be a callable embed_dim -> nn.Module or None, got {norm_layer!r}")
        if (patch_size is None) == (proj is None):
            raise ValueError(
                f"PatchEmbed needs exactly one of patch_size (a convolution) and proj (a given module), "
                f"got patch_size={patch_size!r}, proj={type(proj).__name__ if proj is not None else None}"
            )
        if proj is not None:
            if not isinstance(proj, nn.Module):
                raise TypeError(f"proj must be an nn.Module, got {type(proj).__name__}")
            if stride is not None or padding or pad_input:
                raise ValueError(
                    f"stride, padding and pad_input describe the convolution built from patch_size; with a given "
                    f"proj leave them unset, got stride={stride!r}, padding={padding!r}, pad_input={pad_input!r}"
                )
            self.proj = proj
        else:
            check_int("patch_size", patch_size)
            stride = patch_size if stride is None else check_int("stride", stride)
            check_int("padding", padding, minimum=0)
            self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=stride, padding=padding)
        self.stride = stride
        self.layout = layout
        self.pad_input = pad_input
        self.norm = norm_layer(embed_dim) if norm_layer is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad_input:
            # zero-pad H, W up to multiples of the stride (amounts stay symbolic under torch.fx)
            pad_h = (-x.shape[2]) % self.stride
            pad_w = (-x.shape[3]) % self.stride
            x = F.pad(x, (0, pad_w, 0, pad_h))
        x = self.proj(x)  # (B, in_chans, H, W) -> (B, C, h, w)
        if self.layout == "nchw":
            return self.norm(x)
        x = x.permute(0, 2, 3, 1)  # -> (B, h, w, C)
        if self.layout == "tokens":
            x = x.flatten(1, 2)  # -> (B, h*w, C)
        return self.norm(x)

    def extra_repr(self) -> str:
        return f"layout={self.layout!r}" + (", pad_input=True" if self.pad_input else "")
