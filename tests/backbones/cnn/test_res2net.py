"""Res2Net-50 26w x 4s (plugattn/backbones/cnn/res2net.py)."""
import pytest
import timm
import torch

from ..builders import model_fixture, on_meta, randomize_, x64
from ..contract import ContractCase, check_random_reference_loads, contract_tests
from plugattn.backbones import create_backbone, load_external_weights
from plugattn.backbones.registry import BACKBONES
from plugattn.backbones.cnn.res2net import Bottle2neck, res2net50_26w_4s
from plugattn.backbones.cnn.resnet import ResNet

# timm res2net50_26w_4s, measured by building it with random weights (paper: 25.70M)
REFERENCE_PARAMS = 25_699_120


CASE = ContractCase(
    res2net50_26w_4s, "res2net50_26w_4s", "cnn", num_features=2048, params=REFERENCE_PARAMS,
    train_on_fixture=True,
    timm_name="res2net50_26w_4s", reference_params=REFERENCE_PARAMS, map_features=True, feature_hw=(2, 2),
    init_factory=res2net50_26w_4s, init_kwargs=dict(num_classes=3), inject_sites=(("Bottle2neck", 16),),
)
model = model_fixture(CASE)
test_contract = contract_tests(CASE)


def test_block_equation_against_direct_statement():
    """Gao et al. Eq. 1 written out: y1 = K1(x1), yi = Ki(xi + y_{i-1}), y4 = x4, then 1x1 fuse."""
    block = randomize_(Bottle2neck(64, 16, scale=4, base_width=26), seed=2).eval()
    width = block.width
    assert width == 6  # floor(16 * 26 / 64)
    x = torch.randn(1, 64, 7, 9)
    relu = torch.relu
    with torch.no_grad():
        h = relu(block.bn1(block.conv1(x)))
        x1, x2, x3, x4 = (h[:, i * width:(i + 1) * width] for i in range(4))
        y1 = relu(block.bns[0](block.convs[0](x1)))
        y2 = relu(block.bns[1](block.convs[1](x2 + y1)))
        y3 = relu(block.bns[2](block.convs[2](x3 + y2)))
        expected = relu(block.bn3(block.conv3(torch.cat([y1, y2, y3, x4], 1))) + x)
        torch.testing.assert_close(block(x), expected, rtol=1e-5, atol=1e-6)


def test_first_block_of_stage_pools_the_last_split(model):
    first = model.layer2[0]
    assert first.is_first and isinstance(first.pool, torch.nn.AvgPool2d) and first.pool.stride == 2
    assert not model.layer2[1].is_first and model.layer2[1].pool is None


def test_timm_weights_load_and_match(x64):
    timm_res2net = lambda: timm.create_model("res2net50_26w_4s", pretrained=False)  # noqa: E731
    check_random_reference_loads(res2net50_26w_4s, timm_res2net, "timm", x64[:1])


def test_mismatched_weights_raise():
    reference = on_meta(lambda: timm.create_model("res2net50_26w_6s", pretrained=False)).state_dict()
    with pytest.raises(ValueError, match=r"unexpected keys: .*convs\.3\.weight"):
        load_external_weights(on_meta(res2net50_26w_4s), reference, "timm")


def test_registry():
    assert BACKBONES.get("res2net50").name == "res2net50_26w_4s"
    assert BACKBONES.get("res2net50_26w_4s").info["venue"] == "TPAMI"
    model = create_backbone("res2net50_26w_4s", num_classes=4)
    assert isinstance(model, ResNet) and isinstance(model.layer1[0], Bottle2neck)


def test_bad_arguments():
    with pytest.raises(ValueError, match="scale must be an integer >= 1, got 0"):
        Bottle2neck(64, 16, scale=0)
    with pytest.raises(ValueError, match="num_classes"):
        res2net50_26w_4s(num_classes=-3)
