"""The frame of the fixed-size patch-token MLP models -- MLP-Mixer (Tolstikhin et al., NeurIPS 2021), gMLP
(Liu et al., NeurIPS 2021) and GFNet (Rao et al., NeurIPS 2021): patch stem, token blocks, norm, mean over
the patches, linear head."""
from __future__ import annotations

import torch
import torch.fx
import torch.nn as nn
from einops import rearrange

from ..._validate import check_int
from .checks import check_patch_grid_args
from .image_backbone import ImageBackbone

# einops cannot see torch.fx proxies: record rearrange as one opaque call so the models stay traceable
torch.fx.wrap("rearrange")


class PatchTokenModel(ImageBackbone):
    """Shared frame of the fixed-size patch-token models (MLP-Mixer, gMLP, GFNet): argument checks and
    sizes, the input-size check, and ``forward`` = linear head on the mean of the normalised tokens.

    Subclasses call :meth:`setup_grid` first and define ``stem``, ``blocks``, ``norm`` and ``head``.

    Example:
        >>> class Tiny(PatchTokenModel):
        ...     def __init__(self):
        ...         super().__init__()
        ...         grid = self.setup_grid(32, 8, 3, 16, 1, 5, 0.0)  # a 4 x 4 patch grid
        ...         self.stem, self.blocks = nn.Conv2d(3, 16, 8, stride=8), nn.Identity()
        ...         self.norm, self.head = nn.LayerNorm(16), nn.Linear(16, 5)
        >>> Tiny()(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 5])
    """

    default_input_size = 224

    def setup_grid(self, img_size: int, patch_size: int, in_chans: int, embed_dim: int, depth: int,
                   num_classes: int, drop_path_rate: float) -> int:
        """Check the common arguments, record the sizes; returns the patch-grid side img_size / patch_size."""
        check_int("embed_dim", embed_dim)
        grid = check_patch_grid_args(img_size, patch_size, in_chans, depth, num_classes, drop_path_rate)
        self.num_classes = num_classes
        self.num_features = self.embed_dim = embed_dim
        self.in_chans = in_chans
        self.default_input_size = img_size
        self.input_hw = (img_size, img_size)  # the only size taken: ImageBackbone's input check enforces it
        return grid

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_chans, img_size, img_size) -> normalised patch tokens (B, S, C)."""
        x = rearrange(self.stem(x), "b c h w -> b (h w) c")  # (B, C, h, w) -> (B, S, C)
        return self.norm(self.blocks(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.forward_features(x).mean(dim=1)  # global average pooling over the patches -> (B, C)
        return self.head(x)
