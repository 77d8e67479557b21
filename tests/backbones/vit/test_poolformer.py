"""PoolFormer-S12 (plugattn/backbones/vit/poolformer.py)."""
import pytest
import timm
import torch

from ..builders import model_fixture, on_meta
from ..contract import ContractCase, check_timm_outputs_match, contract_tests
from plugattn.backbones import load_external_weights
from plugattn.backbones.layers import Pooling
from plugattn.backbones.vit.poolformer import PoolFormer, poolformer_s12
from plugattn.testing import assert_rel_close

CASE = ContractCase(
    poolformer_s12, "poolformer_s12", "vit", num_features=512, created_as="poolformer_s12",
    params=11_915_176, timm_name="poolformer_s12",  # timm poolformer_s12, re-measured by the contract test
    train_kwargs=dict(drop_path_rate=0.1), fx_sizes=(224,), map_features=True, feature_hw=(2, 2),
    init_factory=PoolFormer, init_kwargs=dict(depths=(1, 1), dims=(8, 16)),
    inject_sites=(("PoolFormerBlock", 12),),
)
model = model_fixture(CASE)
test_contract = contract_tests(CASE)


def test_keys_match_timm_with_timm_head_order():
    # the paper's head order (before_pool) is the contract's timm_keys check
    ours = on_meta(poolformer_s12, head_norm="after_pool")
    with torch.device("meta"):
        theirs = timm.create_model("poolformer_s12").state_dict()
    mapped = ours.convert_external_state_dict(theirs, "timm")
    assert sorted(mapped) == sorted(ours.state_dict())
    assert all(mapped[k].shape == v.shape for k, v in ours.state_dict().items())


def test_timm_weights_load_and_match_with_timm_head_order():
    ours = poolformer_s12(head_norm="after_pool")
    check_timm_outputs_match(ours, "poolformer_s12", torch.randn(1, 3, 96, 96))


def test_paper_head_normalises_the_map_before_pooling(model):
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        features = model.forward_features(x)
        mean = features.mean(dim=(1, 2, 3), keepdim=True)
        var = features.var(dim=(1, 2, 3), unbiased=False, keepdim=True)
        normed = (features - mean) / torch.sqrt(var + 1e-5) * model.norm.weight.view(-1, 1, 1) \
            + model.norm.bias.view(-1, 1, 1)
        assert_rel_close(model(x), model.head(normed.mean(dim=(2, 3))), what="GroupNorm(1) then mean")


def test_pooling_mixer_is_eq4():
    x = torch.randn(1, 2, 5, 5)
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1))
    ones = torch.nn.functional.pad(torch.ones(1, 1, 5, 5), (1, 1, 1, 1))
    window_sum = torch.nn.functional.conv2d(padded, torch.ones(2, 1, 3, 3), groups=2)
    window_count = torch.nn.functional.conv2d(ones, torch.ones(1, 1, 3, 3))  # padding does not count
    assert_rel_close(Pooling()(x), window_sum / window_count - x, what="AvgPool(x) - x")


def test_features_at_128(model):
    with torch.no_grad():
        assert model.forward_features(torch.randn(1, 3, 128, 128)).shape == (1, 512, 4, 4)


def test_unmatched_weights_raise():
    state = poolformer_s12().state_dict()
    state["head.bias"] = torch.zeros(3)
    with pytest.raises(ValueError, match=r"mis-shaped keys: head\.bias"):
        load_external_weights(poolformer_s12(), state, "torchvision")


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(head_norm="before"), "head_norm must be one of 'before_pool', 'after_pool'"),
        (dict(depths=(1, 1), dims=(8,)), "one entry per stage"),
        (dict(dims=(64, 0, 320, 512)), "dims must be an integer >= 1, got 0"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PoolFormer(**kwargs)
