"""Swin-T (plugattn/backbones/vit/swin.py): parameter count, timm layout and outputs, stage shapes and
shifts, other input sizes (padding), FX tracing with the window op as one node per block, injection."""
import pytest
import torch

import timm
from ..builders import model_fixture, on_meta, randomize_
from ..contract import ContractCase, check_load_matches, check_param_count, contract_tests
from plugattn.backbones.registry import BACKBONES
from plugattn.backbones.vit.swin import SwinTransformer, WindowMSA, swin_tiny

SWIN_T_PARAMS = 28_288_354  # timm swin_tiny_patch4_window7_224 (paper Table 1: 28M), re-measured by the contract

CASE = ContractCase(
    swin_tiny, "swin_tiny", "vit", num_features=768, created_as="swin_t",
    params=SWIN_T_PARAMS, timm_name="swin_tiny_patch4_window7_224",
    fx_sizes=((72, 88),),  # padded in every stage
    init_factory=SwinTransformer, init_kwargs=dict(embed_dim=16, depths=(1, 1), num_heads=(1, 2)),
    inject_sites=(("Conv2d", 1),),  # the patch embedding conv
)
model = model_fixture(CASE)
test_contract = contract_tests(CASE)


def test_registry_and_paper_count():
    assert BACKBONES.get("swin_tiny").info["params"] == SWIN_T_PARAMS
    check_param_count(on_meta(swin_tiny), 28_300_000)  # within 0.5% of the published 28.3M


def test_timm_weights_load_and_match_at_224():
    # every timm tensor seeded-random, except the derived shifted-window masks, rebuilt afterwards
    reference = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False)
    randomize_(reference, seed=0)
    for module in reference.modules():
        if isinstance(module, timm.models.swin_transformer.SwinTransformerBlock):
            module.init_non_persistent_buffers()
    check_load_matches(swin_tiny(), reference, "timm", torch.randn(1, 3, 224, 224))


def test_stage_shapes_and_shifts_follow_paper(model):
    with torch.no_grad():
        x = model.patch_embed(torch.randn(1, 3, 224, 224))
        shapes = []
        for stage in model.layers:
            x = stage(x)
            shapes.append(tuple(x.shape))
    assert shapes == [(1, 56, 56, 96), (1, 28, 28, 192), (1, 14, 14, 384), (1, 7, 7, 768)]
    shifts = [[block.attn.shift_size for block in stage.blocks] for stage in model.layers]
    # alternate W-MSA / SW-MSA (shift 3 = 7 // 2); the 7x7 last stage equals the window: no shift
    assert shifts == [[0, 3], [0, 3], [0, 3, 0, 3, 0, 3], [0, 0]]
    heads = [stage.blocks[0].attn.num_heads for stage in model.layers]
    assert heads == [3, 6, 12, 24]


def test_odd_sizes_are_padded(model):
    with torch.no_grad():
        out = model(torch.randn(1, 3, 90, 61))
    assert out.shape == (1, 10) and torch.isfinite(out).all()
    assert model.forward_features(torch.randn(1, 3, 90, 61)).shape == (1, 768, 3, 2)


def test_one_window_op_node_per_block(model):
    traced = torch.fx.symbolic_trace(model)
    op_nodes = [n for n in traced.graph.nodes if n.op == "call_function" and n.target.__name__ == "window_attention"]
    assert len(op_nodes) == 12


def test_blocks_use_the_window_op_module():
    assert sum(isinstance(m, WindowMSA) for m in swin_tiny().modules()) == 12


def test_torchvision_source_is_refused(model):
    with pytest.raises(ValueError, match="source 'timm' only"):
        model.convert_external_state_dict({}, "torchvision")


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(depths=(2, 2)), "one entry per stage"),
        (dict(num_heads=(3, 5, 12, 24)), r"num_heads\[1\]=5 must divide the stage width 192"),
        (dict(window_size=0), "window_size must be an integer >= 1"),
        (dict(drop_path_rate=1.5), "drop_path_rate"),
        (dict(num_classes=-1), "num_classes must be an integer >= 0"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SwinTransformer(**kwargs)
