"""PiT-Ti (plugattn/backbones/vit/pit.py)."""
import pytest
import torch

from ..builders import model_fixture
from ..contract import ContractCase, check_timm_outputs_match, contract_tests
from plugattn.backbones.vit.pit import PoolingVisionTransformer, pit_ti_224

CASE = ContractCase(
    pit_ti_224, "pit_ti_224", "vit", num_features=256, created_as="pit_ti",
    params=4_847_272, timm_name="pit_ti_224",  # timm pit_ti_224, re-measured by the contract test
    train_kwargs=dict(drop_path_rate=0.1), fx_sizes=(224,),
    init_factory=PoolingVisionTransformer, init_kwargs=dict(img_size=32, base_dims=(8, 8), depth=(1, 1), heads=(2, 4)),
    inject_sites=(("Conv2d", 3),),  # patch embedding conv + the two pooling depthwise convs
    token_blocks=("Pooling",),
)
model = model_fixture(CASE)
test_contract = contract_tests(CASE)


def test_timm_weights_load_and_match_at_224():
    check_timm_outputs_match(pit_ti_224(), "pit_ti_224", torch.randn(1, 3, 224, 224))


def test_stage_shapes_follow_paper(model):
    # Table 1: 27 x 27 tokens of 64 channels, pooled to 14 x 14 x 128, then 7 x 7 x 256
    with torch.no_grad():
        x = model.patch_embed(torch.randn(1, 3, 224, 224))
        assert x.shape == (1, 64, 27, 27)
        cls_token = model.cls_token.expand(1, -1, -1)
        shapes = []
        for stage in model.transformers:
            x, cls_token = stage(x, cls_token)
            shapes.append((tuple(x.shape), tuple(cls_token.shape)))
    assert shapes == [((1, 64, 27, 27), (1, 1, 64)), ((1, 128, 14, 14), (1, 1, 128)), ((1, 256, 7, 7), (1, 1, 256))]


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(depth=(1, 1)), "one entry per stage"),
        (dict(img_size=8), "img_size must be >= patch_size=16"),
        (dict(stride=0), "stride must be an integer >= 1"),
        (dict(drop_path_rate=-0.1), "drop_path_rate"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PoolingVisionTransformer(**kwargs)
