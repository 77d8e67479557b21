"""Channels-last (B, H, W, C) site tensors are detected and handled, never read as NCHW (item 11)."""
import pytest
import torch
import torch.nn as nn

from plugattn.inject import inject_attention, remove_attention
from plugattn.inject.layout import is_channels_last


class SwinLikeBlock(nn.Module):
    """Token mixing on a (B, H, W, C) map, as Swin's blocks: LayerNorm and MLP over the last dim."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, H, W, C) -> (B, H, W, C)
        return x + self.mlp(self.norm(x))


class SwinLike(nn.Module):
    def __init__(self, dim: int = 96) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, dim, 4, 4)
        self.blocks = nn.Sequential(SwinLikeBlock(dim), SwinLikeBlock(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.patch(x).permute(0, 2, 3, 1))  # (B, C, H, W) -> (B, H, W, C)


@pytest.mark.parametrize("size", [(64, 64), (48, 80)])  # square: the shape rule; not square: the LayerNorm/Linear rule
def test_swin_style_blocks_get_their_channels_from_the_last_dim(size):
    model = SwinLike().eval()
    x = torch.randn(2, 3, *size)
    injected = inject_attention(model, "se", after="SwinLikeBlock", reduction=4, example_input=x[:1]).eval()
    site = injected.injection_report.sites[0]
    assert site.channels == 96 and site.channels_last  # not C = H = 16
    assert site.shape == (1, size[0] // 4, size[1] // 4, 96)
    assert "(B, H, W, C)" in str(injected.injection_report)
    # the attention sees the (B, C, H, W) view; the host still receives (B, H, W, C)
    h = injected.patch(x).permute(0, 2, 3, 1)
    for block in injected.blocks:  # .forward() skips the hooks: the attention is applied by hand
        h = block.se(block.forward(h).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
    assert torch.allclose(injected(x), h, rtol=1e-5, atol=1e-6)
    assert torch.equal(remove_attention(injected)(x), model(x))


def test_branch_on_a_channels_last_block():
    model = SwinLike().eval()
    injected = inject_attention(model, "eca", branch="SwinLikeBlock", example_input=torch.randn(1, 3, 64, 64))
    site = injected.injection_report.sites[0]
    assert site.hooked == "blocks.0.mlp" and site.channels == 96 and site.channels_last


def test_torchvision_swin_t_blocks():
    torchvision = pytest.importorskip("torchvision")
    model = torchvision.models.swin_t().eval()
    injected = inject_attention(model, "eca", after="SwinTransformerBlock", example_input=torch.randn(1, 3, 64, 64))
    # Liu et al. 2021: Swin-T stages of 2, 2, 6, 2 blocks at C = 96, 192, 384, 768
    assert [s.channels for s in injected.injection_report.sites] == [96] * 2 + [192] * 2 + [384] * 6 + [768] * 2
    assert all(s.channels_last for s in injected.injection_report.sites)


def test_channels_first_maps_are_not_flagged():
    image = (torch.zeros(1, 3, 64, 64),)
    assert not is_channels_last(torch.zeros(1, 64, 16, 16), nn.BatchNorm2d(64), image)
    assert not is_channels_last(torch.zeros(1, 16, 16, 16), None, image)  # C == H == W: NCHW
    assert not is_channels_last(torch.zeros(1, 32, 16, 16), nn.LayerNorm(32), image)  # LayerNorm2d-style
    assert not is_channels_last(torch.zeros(1, 64, 16, 16).to(memory_format=torch.channels_last), None, image)
