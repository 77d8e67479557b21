"""Sequencer2D-S (plugattn/backbones/mlp/sequencer.py)."""
import pytest
import torch
import torch.nn as nn

from ..builders import model_fixture, on_meta, x64
from ..contract import ContractCase, check_head_variants, check_timm_outputs_match, contract_tests
from plugattn.backbones import load_external_weights
from plugattn.backbones.mlp.sequencer import LSTM2d, Sequencer2d, Sequencer2dStage, sequencer2d_s
from plugattn.testing import assert_rel_close


def tiny(**kwargs):
    config = dict(layers=(1, 1), patch_sizes=(4, 2), embed_dims=(8, 16), hidden_sizes=(2, 4), mlp_ratios=(2.0, 2.0))
    return Sequencer2d(**{**config, **kwargs})


CASE = ContractCase(
    sequencer2d_s, "sequencer2d_s", "mlp", num_features=384, created_as="sequencer2d_s",
    params=27_651_688, timm_name="sequencer2d_s",  # timm's published count, re-measured by the contract test
    train_kwargs=dict(drop_path_rate=0.1),
    fx_sizes=((42, 70),),  # sequence lengths come from the tensor
    feature_shape=(2, 384, 4, 4),  # 64 / 7 -> 9, / 2 -> 4
    init_factory=tiny, init_kwargs=dict(num_classes=3),
    inject_sites=(("Sequencer2dBlock", 18), ("Sequencer2dStage", 4)),
    skip=("head_variants",),  # on a two-stage config below
)
model = model_fixture(CASE)
test_contract = contract_tests(CASE)


def test_table_architecture():
    model = on_meta(sequencer2d_s)
    assert [len(stage.blocks) for stage in model.stages] == [4, 3, 8, 3]
    assert model.stem.proj.kernel_size == (7, 7)
    assert [stage.downsample.down.kernel_size for stage in model.stages[1:]] == [(2, 2), (1, 1), (1, 1)]
    assert [stage.blocks[0].rnn_tokens.rnn_v.hidden_size for stage in model.stages] == [48, 96, 96, 96]
    lstm = model.stages[0].blocks[0].rnn_tokens.rnn_h
    assert lstm.bidirectional and lstm.batch_first and lstm.num_layers == 1


def test_timm_weights_load_and_match(x64):
    check_timm_outputs_match(sequencer2d_s(), "sequencer2d_s", x64[:1])


def test_mismatched_weights_raise():
    state = on_meta(sequencer2d_s).state_dict()
    del state["stages.2.blocks.0.rnn_tokens.fc.weight"]
    with pytest.raises(ValueError, match=r"missing keys: stages\.2\.blocks\.0\.rnn_tokens\.fc\.weight"):
        load_external_weights(on_meta(sequencer2d_s), state, "timm")


def test_bilstm2d_restated():
    # BiLSTM2D(X) = FC(concat(H_ver, H_hor)): columns read top-to-bottom, rows left-to-right, one at a time
    torch.manual_seed(0)
    layer = LSTM2d(6, hidden_size=3).eval()
    x = torch.randn(2, 4, 5, 6)  # (B, H, W, C)
    with torch.no_grad():
        vertical = torch.zeros(2, 4, 5, 6)
        horizontal = torch.zeros(2, 4, 5, 6)
        for b in range(2):
            for j in range(5):
                vertical[b, :, j] = layer.rnn_v(x[b, :, j][None])[0][0]
            for i in range(4):
                horizontal[b, i] = layer.rnn_h(x[b, i][None])[0][0]
        expected = layer.fc(torch.cat([vertical, horizontal], dim=-1))
        assert_rel_close(layer(x), expected, what="BiLSTM2D vs Eq. (3)-(6)")


def test_features_any_input_size(model):
    with torch.no_grad():
        assert model.forward_features(torch.randn(1, 3, 42, 70)).shape == (1, 384, 3, 5)


def test_num_classes_and_in_chans():
    # on a two-stage config: LSTMs on the meta device cost per time step, so the full model is slow there
    check_head_variants(tiny, torch.zeros(2, 3, 32, 32), 16, feature_hw=(4, 4))
    headless = on_meta(sequencer2d_s, num_classes=0, in_chans=1)
    assert isinstance(headless.head, nn.Identity) and headless.num_features == 384
    assert headless.stem.proj.in_channels == 1


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(layers=(1,)), "must have one entry per stage, got lengths 1, 2, 2, 2, 2"),
        (dict(hidden_sizes=(2, 0)), "hidden_sizes must be an integer >= 1, got 0"),
        (dict(drop_path_rate=2.0), r"drop_path_rate must be a number in \[0, 1\), got 2.0"),
        (dict(in_chans=0), "in_chans must be an integer >= 1, got 0"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tiny(**kwargs)


def test_stage_without_downsampling_keeps_width():
    with pytest.raises(ValueError, match="in_dim=8 must equal dim=16"):
        Sequencer2dStage(8, 16, depth=1, patch_size=1, hidden_size=2)
    assert isinstance(Sequencer2dStage(8, 8, depth=1, patch_size=1, hidden_size=2).downsample, nn.Identity)


def test_drop_path_grows_linearly_over_all_blocks_as_the_official_code():
    """two_dim_sequencer.py: block j of all sum(layers) blocks gets rate * j / (sum(layers) - 1)."""
    with torch.device("meta"):
        model = sequencer2d_s(drop_path_rate=0.1)
    rates = [block.drop_path.drop_prob for stage in model.stages for block in stage.blocks]
    assert len(rates) == 18
    assert rates == pytest.approx([0.1 * j / 17 for j in range(18)])
