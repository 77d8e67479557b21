"""Every backbone checks its input once, in ImageBackbone.forward (plugattn/backbones/layers/image_backbone.py),
and says what it expects; every backbone takes in_chans=N and num_classes=M and records in_chans."""
from functools import lru_cache

import pytest
import torch
import torch.fx

from plugattn.backbones import BACKBONES, create_backbone, list_backbones
from plugattn.backbones.layers import ImageBackbone, check_image_batch

ALL_NAMES = list_backbones()


def build_on_meta(name, **kwargs):
    with torch.device("meta"):
        return create_backbone(name, **kwargs).eval()


@lru_cache(maxsize=None)
def default_on_meta(name):
    """The default build, shared by the tests that only feed it inputs it refuses."""
    return build_on_meta(name)


def meta_batch(*shape):
    return torch.empty(*shape, device="meta")


@pytest.mark.parametrize("name", ALL_NAMES)
def test_in_chans_and_num_classes_build_and_run(name):
    model = build_on_meta(name, in_chans=1, num_classes=5)
    assert isinstance(model, ImageBackbone) and model.in_chans == 1
    # the smallest size every model takes keeps this quick (a meta run only follows shapes, yet loops run)
    size = model.input_hw[0] if model.input_hw else max(64, model.input_multiple)
    with torch.no_grad():
        assert model(meta_batch(2, 1, size, size)).shape == (2, 5)


@pytest.mark.parametrize("name", ALL_NAMES)
def test_wrong_rank_and_channels_say_what_the_model_expects(name):
    model = default_on_meta(name)
    size = model.default_input_size
    expects = rf"{type(model).__name__} expects a \(B, 3, H, W\) batch with "
    with pytest.raises(ValueError, match=expects + rf".*got a 3-D input of shape \(3, {size}, {size}\): it lacks the batch axis"):
        model(meta_batch(3, size, size))
    with pytest.raises(ValueError, match=expects + r".*got a 2-D input"):
        model(meta_batch(size, size))
    with pytest.raises(ValueError, match=expects + r".*got 1 channels .*build the model with in_chans=1"):
        model(meta_batch(2, 1, size, size))
    with pytest.raises(TypeError, match=expects + r".*got list"):
        model([0.0])


def test_sizes_the_fixed_size_models_cannot_take():
    fixed = [name for name in ALL_NAMES if default_on_meta(name).input_hw is not None]
    assert sorted(fixed) == ["dynamixer_s", "gfnet_ti", "gfnet_xs", "gmlp_s16_224", "mixer_b16_224", "mixer_s16_224",
                             "smlpnet_tiny", "vip_s7"]
    for name in fixed:
        model = default_on_meta(name)
        with pytest.raises(ValueError, match=r"is defined for 224x224 inputs only.*got input of shape \(1, 3, 192, 192\)"):
            model(meta_batch(1, 3, 192, 192))


def test_mixer_given_a_3d_image_says_it_lacks_the_batch_axis():
    # the case: a 224x224 image without its batch axis is not "a size to resize"
    model = default_on_meta("mixer_s16_224")
    with pytest.raises(ValueError) as error:
        model(meta_batch(3, 224, 224))
    assert str(error.value) == ("MlpMixer expects a (B, 3, H, W) batch with H = W = 224 only, got a 3-D input of shape "
                                "(3, 224, 224): it lacks the batch axis; use x.unsqueeze(0)")


@pytest.mark.parametrize("name,multiple", [("cswin_tiny", 112), ("mobilevit_s", 64)])
def test_models_that_need_multiples_say_so(name, multiple):
    model = default_on_meta(name)
    assert model.input_multiple == multiple
    with pytest.raises(ValueError, match=rf"H, W multiples of {multiple}, got a 100x{multiple} input"):
        model(meta_batch(1, 3, 100, multiple))


def test_channels_last_image_gets_the_hint():
    with pytest.raises(ValueError, match=r"got 32 channels .* or pass channels first \(B, C, H, W\)"):
        check_image_batch(torch.zeros(1, 32, 32, 3), 3, "ResNet")


@pytest.mark.parametrize("name,size", [("resnet18", 32), ("mixer_s16_224", 224), ("vit_tiny_patch16_224", 32)])
def test_the_check_is_one_node_of_the_traced_graph_and_runs_there(name, size):
    torch.manual_seed(0)
    model = create_backbone(name, num_classes=3).eval()
    traced = torch.fx.symbolic_trace(model)
    checks = [n for n in traced.graph.nodes if n.op == "call_function" and n.target is check_image_batch]
    assert len(checks) == 1
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        torch.testing.assert_close(traced(x), model(x))
    with pytest.raises(ValueError, match="it lacks the batch axis"):
        traced(x[0])


def test_registered_models_record_in_chans_by_default():
    assert all(default_on_meta(name).in_chans == 3 for name in ALL_NAMES)
    assert BACKBONES.get("resnet18").factory(in_chans=2).in_chans == 2
