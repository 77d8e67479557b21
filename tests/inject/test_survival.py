"""Injected models survive training, copying, serialization, compilation, DDP and re-tracing."""
import copy
import pickle

import pytest
import torch

from .inject_models import DataDependentNet, TinyResNet, ddp_worker
from plugattn.inject import inject_attention, remove_attention
from plugattn.testing import assert_rel_close

X = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(5))
EXAMPLE = X[:1]


def build(kind: str, seed: int = 0):
    """(original, injected) for the three ways a model comes out of inject_attention."""
    torch.manual_seed(seed)
    if kind == "fx-after":
        original = TinyResNet()
        injected = inject_attention(original, "eca", after="ResidualBlock", example_input=EXAMPLE)
    elif kind == "fx-branch":
        original = TinyResNet()
        injected = inject_attention(original, "se", branch="ResidualBlock", reduction=4, example_input=EXAMPLE)
    else:
        original = DataDependentNet()
        injected = inject_attention(original, "eca", before="PlainBlock", example_input=EXAMPLE)
        assert injected.injection_report.mode == "hook"
    return original, injected


KINDS = ["fx-after", "fx-branch", "hook"]


@pytest.mark.parametrize("kind", KINDS)
def test_train_and_eval_forward_backward(kind):
    original, injected = build(kind)
    for training in (True, False):
        injected.train(training)
        injected.zero_grad()
        out = injected(X)
        assert out.shape == (2, original.fc.out_features)
        out.square().mean().backward()
        for site in injected.injection_report.sites:
            grads = [p.grad for p in injected.get_submodule(site.attention).parameters()]
            assert grads and all(g is not None and g.abs().sum() > 0 for g in grads), site.attention
        assert injected.fc.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("kind", KINDS)
def test_deepcopy(kind):
    _, injected = build(kind)
    injected.eval()
    clone = copy.deepcopy(injected)
    assert_rel_close(clone(X), injected(X))
    assert clone.injection_report.sites == injected.injection_report.sites
    assert type(clone).__name__ == type(injected).__name__
    assert_rel_close(remove_attention(clone)(X), remove_attention(injected)(X))


@pytest.mark.parametrize("kind", KINDS)
def test_pickle_and_torch_save_whole_model(kind, tmp_path):
    _, injected = build(kind)
    injected.eval()
    restored = pickle.loads(pickle.dumps(injected))
    assert_rel_close(restored(X), injected(X))
    torch.save(injected, tmp_path / "model.pt")
    loaded = torch.load(tmp_path / "model.pt", weights_only=False)
    assert_rel_close(loaded(X), injected(X))
    assert list(loaded.state_dict()) == list(injected.state_dict())
    assert [s.attention for s in loaded.injection_report.sites] == [s.attention for s in injected.injection_report.sites]


@pytest.mark.parametrize("kind", KINDS)
def test_state_dict_into_a_freshly_injected_model(kind, tmp_path):
    _, trained = build(kind, seed=0)
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(0.01)  # "training": the attention weights differ from a fresh init too
    torch.save(trained.state_dict(), tmp_path / "weights.pt")
    _, fresh = build(kind, seed=1)
    trained.eval()
    fresh.eval()
    assert not torch.allclose(fresh(X), trained(X))
    result = fresh.load_state_dict(torch.load(tmp_path / "weights.pt"))
    assert not result.missing_keys and not result.unexpected_keys
    assert_rel_close(fresh(X), trained(X))


@pytest.mark.parametrize("kind", ["fx-after", "fx-branch"])
def test_symbolic_trace_of_the_result(kind):
    _, injected = build(kind)
    injected.eval()
    traced = torch.fx.symbolic_trace(injected)
    assert_rel_close(traced(X), injected(X))
    again = inject_attention(injected, "eca", after="name:stem", example_input=EXAMPLE).eval()  # composes
    assert len(again.injection_report.sites) == 3
    assert_rel_close(remove_attention(again)(X), remove_attention(injected)(X))


@pytest.mark.parametrize("kind", KINDS)
def test_remove_attention_gives_back_the_original(kind):
    original, injected = build(kind)
    original.eval()
    injected.eval()
    assert not torch.allclose(injected(X), original(X))
    restored = remove_attention(injected)
    assert type(restored) is type(original)
    assert [type(m) for m in restored.modules()] == [type(m) for m in original.modules()]
    assert list(restored.state_dict()) == list(original.state_dict())
    for key, value in original.state_dict().items():
        assert torch.equal(restored.state_dict()[key], value), key
    assert_rel_close(restored(X), original(X))
    assert not hasattr(restored, "injection_report")


@pytest.mark.slow
def test_torch_compile_on_cpu():
    # inductor (the default backend) compiles this model in ~30 s on 2 CPU cores
    _, injected = build("fx-after")
    injected.eval()
    compiled = torch.compile(injected)
    assert_rel_close(compiled(X), injected(X))


@pytest.mark.slow
def test_ddp_step_with_gloo_gradients_equal_across_ranks(tmp_path):
    _, injected = build("fx-branch")
    torch.save(injected, tmp_path / "model.pt")
    torch.multiprocessing.spawn(ddp_worker, args=(2, str(tmp_path)), nprocs=2, join=True)
    grads0 = torch.load(tmp_path / "grads0.pt")
    grads1 = torch.load(tmp_path / "grads1.pt")
    used = [n for n, _ in injected.named_parameters() if not n.startswith("unused.")]
    assert list(grads0) == list(grads1) == used
    for name in grads0:
        assert torch.equal(grads0[name], grads1[name]), name
    attention_grads = [g for n, g in grads0.items() if ".se." in n]
    assert len(attention_grads) == 8 and all(g.abs().sum() > 0 for g in attention_grads)
