"""MobileViT-S (Mehta & Rastegari, ICLR 2022) against timm's mobilevit_s."""
import pytest
import timm
import torch

from ..builders import model_fixture, random_batch
from ..contract import ContractCase, check_bad_load_raises, check_load_matches, contract_tests
from plugattn.backbones.vit.mobilevit import MobileViT, fold_patches, mobilevit_s, unfold_patches

# timm.create_model("mobilevit_s", pretrained=False): 5,578,632 parameters (measured)
TIMM_PARAMS = 5_578_632

CASE = ContractCase(
    mobilevit_s, "mobilevit_s", "vit", num_features=640, created_as="mobilevit_s", model_class=MobileViT,
    train_on_fixture=True,
    reference_params=TIMM_PARAMS, heads_with_weights=True, feature_shape=(2, 640, 2, 2), default_input_size=256,
    fx_sizes=(128,),  # a size other than the default 256 that the 2x2 patching allows
    init_factory=mobilevit_s, init_kwargs=dict(num_classes=10),
    inject_sites=(("MV2Block", 7),),  # stages: 1 + 3 + 1 + 1 + 1 = 7 MV2 blocks
    token_blocks=("TransformerLayer",),
)
model = model_fixture(CASE)
test_contract = contract_tests(CASE)


def test_size_not_divisible_by_the_patching_is_refused(model):
    # 96 -> the last MobileViT block sees 3x3, not divisible by the 2x2 patch
    with pytest.raises(ValueError, match=r"expects a \(B, 3, H, W\) batch with H, W multiples of 64, got a 96x96"):
        model.eval()(torch.randn(1, 3, 96, 96))
    with pytest.raises(ValueError, match="3x3 is not divisible by the 2x2 patch"):  # the block's own check
        model.forward_features(torch.randn(1, 3, 96, 96))


def test_unfold_fold_round_trip_and_layout():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    tokens = unfold_patches(x, 2, 2)
    assert tokens.shape == (2 * 4, 4, 3)
    # token sequence 0 of image 0 holds the top-left pixel of every 2x2 patch, patches in raster order
    assert torch.equal(tokens[0, :, 0], x[0, 0, ::2, ::2].reshape(-1))
    assert torch.equal(fold_patches(tokens, 2, 4, 4, 2, 2), x)


def test_timm_weights_give_timm_outputs():
    torch.manual_seed(0)
    check_load_matches(mobilevit_s(), timm.create_model("mobilevit_s", pretrained=False), "timm", random_batch(64, batch=1))


def test_mismatched_weights_are_refused():
    state = timm.create_model("mobilevit_s", pretrained=False).state_dict()
    check_bad_load_raises(mobilevit_s(), state, "timm")


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_classes"):
        mobilevit_s(num_classes=-1)
    with pytest.raises(ValueError, match="dropout"):
        mobilevit_s(dropout=1.0)
