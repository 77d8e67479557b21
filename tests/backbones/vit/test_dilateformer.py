"""DilateFormer-Tiny (Jiao et al., IEEE TMM 2023): official config, SWDA / MSDA, FX at 64 and 224."""
import pytest
import torch

from ..builders import model_fixture, on_meta
from ..contract import ContractCase, contract_tests
from plugattn.backbones.vit.dilateformer import (
    DilateAttention,
    DilateFormer,
    MultiDilateLocalAttention,
    dilateformer_tiny,
)
from plugattn.parameters import count_parameters

# the official dilateformer_tiny layer shapes give 17,238,744 parameters (paper Table 1: "17M")
OFFICIAL_PARAMS = 17_238_744
SIZE = 64

CASE = ContractCase(
    dilateformer_tiny, "dilateformer_tiny", "vit", num_features=576, created_as="dilateformer_tiny",
    train_on_fixture=True,
    model_class=DilateFormer, reference_params=OFFICIAL_PARAMS, size=SIZE, heads_with_weights=True,
    feature_shape=(2, 4, 576),  # 64 -> 16 -> 8 -> 4 -> 2: 4 tokens of width 8C = 576
    fx_sizes=(224,), init_factory=dilateformer_tiny, init_kwargs=dict(num_classes=10),
    inject_sites=(("DilateBlock", 4), ("PatchMerging", 3)), token_blocks=("MultiDilateLocalAttention",),
)
model = model_fixture(CASE)
test_contract = contract_tests(CASE)


def block_params(c: int) -> int:
    """CPE dwconv 9C + C, LN 2C, qkv 3C^2 + 3C, proj C^2 + C, LN 2C, MLP 8C^2 + 5C (MSDA and MHSA alike)."""
    return 10 * c + 2 * c + 3 * c * c + 3 * c + c * c + c + 2 * c + 8 * c * c + 5 * c


def test_param_count_matches_the_official_config():
    stem = 3 * 16 * 9 + 2 * 16 + 16 * 32 * 9 + 2 * 32 + 32 * 64 * 9 + 2 * 64 + 64 * 72 * 9
    blocks = sum(depth * block_params(72 * 2 ** i) for i, depth in enumerate((2, 2, 6, 2)))
    merges = sum(9 * c * 2 * c + 2 * c + 4 * c for c in (72, 144, 288))
    head = 2 * 576 + 576 * 1000 + 1000
    assert count_parameters(on_meta(dilateformer_tiny)) == stem + blocks + merges + head == OFFICIAL_PARAMS


def test_sliding_window_dilated_attention_matches_eq_1():
    # Eq. (1) on a 5x5 map, one head, k = 3, r = 2: keys at offsets {-2, 0, 2}^2, zero outside the map
    torch.manual_seed(0)
    swda = DilateAttention(num_heads=1, kernel_size=3, dilation=2)
    q, k, v = torch.randn(3, 1, 4, 5, 5).unbind(0)
    out = swda(q, k, v).reshape(5, 5, 4)
    for i in range(5):
        for j in range(5):
            keys, values = [], []
            for di in (-2, 0, 2):
                for dj in (-2, 0, 2):
                    inside = 0 <= i + di < 5 and 0 <= j + dj < 5
                    keys.append(k[0, :, i + di, j + dj] if inside else torch.zeros(4))
                    values.append(v[0, :, i + di, j + dj] if inside else torch.zeros(4))
            weights = torch.softmax(torch.stack(keys) @ q[0, :, i, j] / 2.0, dim=0)  # sqrt(d) = 2
            torch.testing.assert_close(out[i, j], weights @ torch.stack(values), rtol=1e-5, atol=1e-5)


def test_msda_groups_use_their_own_dilation():
    # the first third of the heads (r = 1) only sees the 3x3 neighbourhood: a change 2 pixels away leaves
    # it unchanged, while the r = 2 group sees it
    torch.manual_seed(0)
    msda = MultiDilateLocalAttention(12, num_heads=3, dilation=(1, 2, 3))
    x = torch.randn(1, 49, 12)
    moved = x.clone()
    moved[0, 3 * 7 + 5] += 1.0  # pixel (3, 5); the centre (3, 3) is 2 columns away
    heads = lambda t: msda.qkv(t.transpose(1, 2).reshape(1, 12, 7, 7))  # (1, 3C, 7, 7)
    qkv, qkv_moved = heads(x), heads(moved)
    group = lambda t, g: [t[:, part * 12 + 4 * g: part * 12 + 4 * g + 4] for part in range(3)]
    centre = 3 * 7 + 3
    near = msda.dilate_attention[0](*group(qkv, 0))[0, centre]
    near_moved = msda.dilate_attention[0](*group(qkv_moved, 0))[0, centre]
    torch.testing.assert_close(near, near_moved)
    far = msda.dilate_attention[1](*group(qkv, 1))[0, centre]
    assert not torch.allclose(far, msda.dilate_attention[1](*group(qkv_moved, 1))[0, centre])


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_classes"):
        dilateformer_tiny(num_classes=-1)
    with pytest.raises(ValueError, match="dilated_stages"):
        dilateformer_tiny(depths=(2, 2, 6))
    with pytest.raises(ValueError, match="num_heads=4 must be a multiple"):
        MultiDilateLocalAttention(16, num_heads=4, dilation=(1, 2, 3))
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        DilateAttention(1, kernel_size=4)
