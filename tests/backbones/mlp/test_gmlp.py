"""gMLP-S (plugattn/backbones/mlp/gmlp.py)."""
import pytest
import torch
import torch.nn.functional as F

from ..builders import model_fixture, on_meta, x224
from ..contract import ContractCase, check_timm_outputs_match, contract_tests
from plugattn.backbones.mlp.gmlp import GMlp, SpatialGatingUnit, gmlp_s16_224
from plugattn.testing import assert_rel_close


def tiny(**kwargs):
    config = dict(img_size=32, patch_size=8, embed_dim=16, depth=2, mlp_ratio=4.0)
    return GMlp(**{**config, **kwargs})


# batch 1 at 224: the model is fixed to 224 x 224, one image keeps CI fast
CASE = ContractCase(
    gmlp_s16_224, "gmlp_s16_224", "mlp", num_features=256, created_as="gmlp_s16_224",
    params=19_422_656, timm_name="gmlp_s16_224",  # timm's published count, re-measured by the contract test
    size=224, batch=1, feature_shape=(1, 196, 256), fixed_size_other=96,
    init_factory=tiny, init_kwargs=dict(num_classes=3),
    inject_sites=(("PatchEmbed", 1),), token_blocks=("SpatialGatingBlock",),
)
model = model_fixture(CASE)
test_contract = contract_tests(CASE)


def test_table1_gmlp_s_sizes():
    # Table 1 gMLP-S: L=30, d_model=256, d_ffn=1536; spatial W is n x n with n = 14 * 14
    model = on_meta(gmlp_s16_224)
    assert len(model.blocks) == 30
    block = model.blocks[0].mlp_channels
    assert block.fc1.weight.shape == (1536, 256) and block.fc2.weight.shape == (256, 768)
    assert block.gate.proj.weight.shape == (196, 196)


def test_timm_weights_load_and_match(x224):
    check_timm_outputs_match(gmlp_s16_224(), "gmlp_s16_224", x224)


def test_spatial_gating_unit_restated():
    # s(Z) = Z1 * (W LN(Z2) + b), W mixing tokens (Eq. (2)-(3))
    unit = SpatialGatingUnit(dim=12, num_tokens=5)
    torch.nn.init.normal_(unit.proj.weight)
    torch.nn.init.normal_(unit.proj.bias)
    z = torch.randn(3, 5, 12)
    z1, z2 = z[..., :6], z[..., 6:]
    gate = torch.einsum("mn,bnd->bmd", unit.proj.weight, F.layer_norm(z2, (6,))) + unit.proj.bias[None, :, None]
    with torch.no_grad():
        assert_rel_close(unit(z), z1 * gate, what="SGU vs Eq. (3)")


def test_gate_starts_near_identity():
    # Section 2.1: W ~ 0, b = 1, so s(Z) ~ Z1 at initialisation
    torch.manual_seed(0)
    unit = tiny().blocks[0].mlp_channels.gate
    assert float(unit.proj.weight.detach().abs().max()) < 1e-5 and bool((unit.proj.bias == 1).all())
    z = torch.randn(2, 16, 64)
    with torch.no_grad():
        torch.testing.assert_close(unit(z), z[..., :32], atol=1e-4, rtol=0)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(mlp_ratio=1.5, embed_dim=5), r"d_ffn\) must be an even integer >= 2, got mlp_ratio=1.5"),
        (dict(img_size=36), "patch_size must divide img_size=36"),
        (dict(drop_path_rate=-0.1), r"drop_path_rate must be a number in \[0, 1\)"),
        (dict(embed_dim=0), "embed_dim must be an integer >= 1, got 0"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tiny(**kwargs)


def test_odd_gate_width_raises():
    with pytest.raises(ValueError, match="dim must be even, got 7"):
        SpatialGatingUnit(7, num_tokens=4)
