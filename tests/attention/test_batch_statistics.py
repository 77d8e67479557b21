"""BAM, SK and SRM normalise pooled vectors with BatchNorm, and CBAM and triplet attention normalise
one-channel maps: in training mode each needs more than one value per channel. Where it would get one,
the module raises its own ValueError (module, input shape, fix) before any BatchNorm runs; eval mode
and every input with more values work."""
import pytest
import torch

from plugattn import BAM, CBAM, SRM, SKLayer, TripletAttention

C = 8
MODULES = {
    "BAM": lambda: BAM(C, reduction=2),
    "SKLayer": lambda: SKLayer(C),
    "SRM": lambda: SRM(C),
    "CBAM": lambda: CBAM(C, reduction=2),
    "TripletAttention": lambda: TripletAttention(C),
}
# (module, input shape that leaves a BatchNorm one value per channel in training, fix named)
RAISES = [
    ("BAM", (1, C, 6, 6), "use a batch of at least 2, or call .eval()"),
    ("SKLayer", (1, C, 6, 6), "use a batch of at least 2, or call .eval()"),
    ("SRM", (1, C, 6, 6), "use a batch of at least 2, or call .eval()"),
    ("CBAM", (1, C, 1, 1), "use a batch of at least 2 or a larger height × width, or call .eval()"),
    ("TripletAttention", (1, C, 1, 1), "use a batch of at least 2 or a larger height × width, or call .eval()"),
]
# inputs that work in training: batch 2 everywhere, and batch 1 on larger maps where only maps are normalised
WORKS = [(name, (2, C, 1, 1)) for name in MODULES] + [("CBAM", (1, C, 2, 1)), ("TripletAttention", (1, C, 1, 2))]


def batch_norm_state(module):
    return [b.clone() for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
            for b in m.buffers()]


@pytest.mark.parametrize("name,shape,fix", RAISES, ids=[r[0] for r in RAISES])
def test_batch_one_in_training_raises_a_clear_error_before_any_batch_norm(name, shape, fix):
    module = MODULES[name]().train()
    before = batch_norm_state(module)
    with pytest.raises(ValueError) as error:
        module(torch.randn(shape))
    message = str(error.value)
    assert message.startswith(f"{name} in training mode cannot take input of shape {shape}: its BatchNorm")
    assert "would see 1 value per channel" in message and fix in message
    assert all(torch.equal(a, b) for a, b in zip(before, batch_norm_state(module))), "a BatchNorm ran first"
    assert module.eval()(torch.randn(shape)).shape == shape  # eval mode takes it


@pytest.mark.parametrize("name,shape", WORKS, ids=[f"{n}-{'x'.join(map(str, s))}" for n, s in WORKS])
def test_inputs_with_more_values_train(name, shape):
    y = MODULES[name]().train()(torch.randn(shape))
    assert y.shape == shape and torch.isfinite(y).all()


def test_triplet_branch_planes_are_checked_too():
    """C = W = 1 at batch 1: the C-W branch's BatchNorm sees one value although H > 1."""
    with pytest.raises(ValueError, match=r"over batch × channels × width"):
        TripletAttention().train()(torch.randn(1, 1, 5, 1))
    assert TripletAttention(no_spatial=True).train()(torch.randn(1, 2, 1, 1)).shape == (1, 2, 1, 1)


def test_a_frozen_batch_norm_is_not_refused():
    """Only a BatchNorm that is itself in training mode needs batch statistics."""
    module = SRM(C).train()
    module.bn.eval()
    assert module(torch.randn(1, C, 4, 4)).shape == (1, C, 4, 4)


def test_fx_trace_keeps_working():
    traced = torch.fx.symbolic_trace(SRM(C))
    assert traced(torch.randn(2, C, 3, 3)).shape == (2, C, 3, 3)


def test_the_readme_zoo_table_marks_exactly_the_modules_that_need_more_values():
    """† in the README's zoo table: needs batch >= 2 to train; ‡: only a single 1x1 map is too small."""
    import re
    from pathlib import Path

    from plugattn import create_attention, list_attention

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    marked = dict(re.findall(r"^\| `(\w+)`[^|]*?([†‡])? \|", readme, re.M))
    needs_batch, needs_map = set(), set()
    for name in list_attention():
        module = create_attention(name, 16).train()
        for shape, bucket in [((1, 16, 3, 3), needs_batch), ((1, 16, 1, 1), needs_map)]:
            try:
                module(torch.randn(shape))
            except ValueError:
                bucket.add(name)
                break
    assert {n for n, mark in marked.items() if mark == "†"} == needs_batch == {"bam", "sk", "srm"}
    assert {n for n, mark in marked.items() if mark == "‡"} == needs_map == {"cbam", "triplet"}
