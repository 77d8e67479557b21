"""inject_attention(init="identity"): the host's outputs exactly at insertion, every attention parameter
learning after at most one optimizer step, the fused-gate dispatch, keys, removal and the report."""
import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from .inject_models import DataDependentNet, TinyResNet
from plugattn.attention import ATTENTION, SELayer, list_attention, register_attention
from plugattn.inject import IdentityGate, added_parameters, inject_attention, remove_attention

X64 = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(11))
TARGETS = torch.tensor([3, 917])
X16 = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(12))
# The first block of each ResNet-50 stage: all four widths (256..2048 out, 64..1024 in), each a
# downsampling block with a projection shortcut; keeps the 45 cases cheap.
FIRST_BLOCKS = r"re:layer\d\.0"
# the zoo's own modules, not those other tests (or this one, below) register
ZOO = [name for name in list_attention() if ATTENTION.get(name).factory.__module__.startswith("plugattn.attention.")]
assert len(ZOO) == 15, ZOO


def bits(t: torch.Tensor) -> torch.Tensor:
    return t.detach().contiguous().view(torch.int32)


def assert_bitwise_equal(a: torch.Tensor, b: torch.Tensor) -> None:
    assert a.dtype == b.dtype and a.shape == b.shape
    assert torch.equal(bits(a), bits(b)), f"max |delta| = {(a - b).abs().max().item()}"


def nonzero_grad(p: torch.Tensor) -> bool:
    return p.grad is not None and bool(torch.isfinite(p.grad).all()) and bool(p.grad.any())


@pytest.fixture(scope="module")
def host_logits(_resnet50_master):
    with torch.no_grad():
        return _resnet50_master(X64)


@pytest.mark.parametrize("position", ["after", "before", "branch"])
@pytest.mark.parametrize("name", ZOO)
def test_resnet50_every_module_every_position_exact_then_learns(_resnet50_master, host_logits, name, position):
    """Done-when of the issue: max |delta| = 0 (bit for bit) in fp32 eval at insertion, and after one
    Adam step every added parameter has a nonzero gradient of a cross-entropy loss (train mode)."""
    torch.manual_seed(0)
    model = inject_attention(_resnet50_master, name, FIRST_BLOCKS, where=position, example_input=X64[:1],
                             init="identity").eval()
    with torch.no_grad():
        assert_bitwise_equal(model(X64), host_logits)

    report = model.injection_report
    gates = [model.get_submodule(s.attention).gamma for s in report.sites if s.gate_params]
    gated_expected = name not in ("gc", "gct")  # these two start as the identity and go in ungated
    assert len(gates) == (len(report.sites) if gated_expected else 0)
    added = added_parameters(model)
    optimizer = torch.optim.Adam(added, lr=1e-3)
    model.train()
    for step in range(2):
        optimizer.zero_grad()
        F.cross_entropy(model(X64), TARGETS).backward()
        if step == 0:
            assert all(nonzero_grad(g) for g in gates), "every gate has a gradient at step 0"
            behind_gates = [p for s in report.sites if s.gate_params
                            for p in model.get_submodule(s.attention).attention.parameters()]
            assert all(p.grad is None or not p.grad.any() for p in behind_gates), "closed gates pass no gradient"
        optimizer.step()
    missing = [n for n, p in model.named_parameters() if any(p is q for q in added) and not nonzero_grad(p)]
    if missing:  # allowed only where the module itself passes no gradient on this batch, gate or not
        assert_no_gradient_without_gate_either(_resnet50_master, name, position, missing)


def assert_no_gradient_without_gate_either(host, name, position, missing):
    """The same module with init="default" (same seed, same weights) at step 0 gives these parameters
    no gradient either: SE's and CBAM's channel MLPs before layer1.0 have 64 // 16 = 4 hidden ReLUs,
    all negative on this batch (the only 2 of the 45 cases), so nothing flows back through them with or without a gate."""
    torch.manual_seed(0)
    default = inject_attention(host, name, FIRST_BLOCKS, where=position, example_input=X64[:1]).train()
    F.cross_entropy(default(X64), TARGETS).backward()
    ungated = {n.replace(".attention.", ".", 1): n for n in missing}
    without_grad = {n for n, p in default.named_parameters() if n in ungated and not nonzero_grad(p)}
    assert without_grad == set(ungated), f"no gradient after one step, though there is one without a gate: {missing}"


class ResidualConv(nn.Module):
    """x + conv(x): not the identity at init."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 1)

    def forward(self, x):
        return x + self.conv(x)


class ReZeroConv(nn.Module):
    """x + alpha * conv(x) with alpha = 0: the identity at init, by its own design."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 1)
        self.alpha = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return x + self.alpha * self.conv(x)


register_attention("test_identity_residual_conv")(ResidualConv)
register_attention("test_identity_rezero_conv")(ReZeroConv)


@pytest.mark.parametrize("position", ["after", "before", "branch"])
@pytest.mark.parametrize("attention", ["test_identity_residual_conv", "test_identity_rezero_conv", ResidualConv,
                                       lambda channels: SELayer(channels, reduction=4)])
def test_user_modules_exact_in_train_and_eval_then_learn(attention, position):
    torch.manual_seed(0)
    host = TinyResNet().eval()
    model = inject_attention(host, attention, "ResidualBlock", where=position, example_input=X16[:1], init="identity")
    for training in (False, True):
        host.train(training), model.train(training)
        with torch.no_grad():
            assert_bitwise_equal(model(X16), host(X16))
    rezero = attention == "test_identity_rezero_conv"
    assert all((s.gate_params == 0) == rezero for s in model.injection_report.sites)
    optimizer = torch.optim.SGD(added_parameters(model), lr=0.1)
    for _ in range(2):
        optimizer.zero_grad()
        F.cross_entropy(model(X16), torch.tensor([0, 4])).backward()
        optimizer.step()
    assert all(nonzero_grad(p) for p in added_parameters(model))


def test_hook_path_and_bfloat16_exact():
    torch.manual_seed(0)
    host = DataDependentNet().eval()
    model = inject_attention(host, "se", before="PlainBlock", example_input=X16[:1], reduction=4, init="identity")
    assert model.injection_report.mode == "hook"
    with torch.no_grad():
        assert_bitwise_equal(model(X16), host(X16))
        host16, model16 = copy.deepcopy(host).bfloat16(), copy.deepcopy(model).bfloat16()
        out = model16(X16.bfloat16())
        assert out.dtype == torch.bfloat16
        assert torch.equal(out.view(torch.int16), host16(X16.bfloat16()).view(torch.int16))


class Negate(nn.Module):
    def forward(self, x):
        return -x


@pytest.mark.parametrize("attention", [SELayer(4, reduction=2), Negate()])
def test_gate_keeps_negative_zero(attention):
    """gamma * (a - x) can be +0.0, and -0.0 + 0.0 == +0.0; the gate still returns -0.0 where x has it."""
    x = torch.randn(2, 4, 3, 3, generator=torch.Generator().manual_seed(3))
    x[0, :, 0, 0] = -0.0
    x[1, :, 1, 1] = 0.0
    gate = IdentityGate(attention, 4)
    with torch.no_grad():
        assert_bitwise_equal(gate(x), x)
        naive = x + gate.gamma.view(1, -1, 1, 1) * (attention(x) - x)
        assert not torch.equal(bits(naive), bits(x))  # the plain sum flips the sign of zero somewhere
        gate.gamma.copy_(torch.tensor([0.5, -1.0, 2.0, 0.25]))
        out, plain = gate(x), x + gate.gamma.view(1, -1, 1, 1) * (attention(x) - x)
        assert torch.equal(out, plain)  # an open gate computes x + gamma * (a - x) ...
        assert torch.equal(bits(out)[x != 0], bits(plain)[x != 0])  # ... bit for bit, up to the sign of a zero


class WithFusedGate(nn.Module):
    """A stand-in for the fused SE / ECA / SimAM modules: records forward_gated calls."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = []

    def forward(self, x):
        return 2 * x

    def forward_gated(self, x, gate):
        self.calls.append(gate)
        return x + gate.view(1, -1, 1, 1) * (self(x) - x) + 100  # marked, so the test sees which path ran


def test_dispatch_to_forward_gated_and_back():
    x = torch.randn(1, 3, 2, 2)
    fused = WithFusedGate()
    gate = IdentityGate(fused, 3)
    assert torch.equal(gate(x), x + 100)
    assert len(fused.calls) == 1 and fused.calls[0] is gate.gamma  # the parameter itself, so gradients reach it

    seen = []
    handle = fused.register_forward_hook(lambda module, args, out: seen.append(out))
    assert torch.equal(gate(x), x) and len(seen) == 1 and len(fused.calls) == 1  # hooks: the generic path, hook runs
    handle.remove()

    plain = IdentityGate(nn.Conv2d(3, 3, 1), 3)
    assert torch.equal(plain(x), x)
    assert not hasattr(plain.attention, "forward_gated")


def test_state_dict_keys_removal_report_and_tracing(image32):
    import torchvision

    torch.manual_seed(0)
    host = torchvision.models.resnet18().eval()
    eca = inject_attention(host, "eca", after="basicblock", example_input=image32, init="identity")
    gc = inject_attention(host, "gc", after="basicblock", example_input=image32, init="identity")
    default_gc = inject_attention(host, "gc", after="basicblock", example_input=image32)
    host_keys = set(host.state_dict())
    eca_keys = set(eca.state_dict()) - host_keys
    assert "layer1.0.eca.gamma" in eca_keys and "layer1.0.eca.attention.conv.weight" in eca_keys
    assert all(k.endswith(".gamma") or ".eca.attention." in k for k in eca_keys)
    assert set(gc.state_dict()) == set(default_gc.state_dict())  # ungated: the default keys
    assert host_keys < set(eca.state_dict())

    fresh = inject_attention(host, "eca", after="basicblock", example_input=image32, init="identity")
    with torch.no_grad():
        for p in added_parameters(eca):
            p.add_(0.1)
        fresh.load_state_dict(eca.state_dict())  # strict
        assert torch.equal(fresh(image32), eca(image32)) and not torch.equal(eca(image32), host(image32))

        stripped = remove_attention(eca)
        assert type(stripped).__name__ == "ResNet" and set(stripped.state_dict()) == host_keys
        assert_bitwise_equal(stripped(image32), host(image32))
        traced = torch.fx.symbolic_trace(eca)
        assert torch.equal(traced(image32), eca(image32))

    report = eca.injection_report
    channels = [64, 64, 128, 128, 256, 256, 512, 512]
    assert [s.gate_params for s in report.sites] == channels and {s.init for s in report.sites} == {"identity"}
    assert {s.attention_class for s in report.sites} == {"ECALayer"}
    default = inject_attention(host, "eca", after="basicblock", example_input=image32).injection_report
    assert report.params_added == default.params_added + sum(channels)
    assert "8 of 8 sites gated" in str(report) and "1,920 gate parameters" in str(report)
    assert "GCModule already the identity at init" in str(gc.injection_report)
    assert {s.init for s in default.sites} == {"default"} and "init identity" not in str(default)


def test_unknown_init_is_refused(image32):
    with pytest.raises(ValueError, match=r"init must be one of 'default', 'identity', got 'identty'; did you mean 'identity'\?"):
        inject_attention(TinyResNet(), "eca", after="ResidualBlock", example_input=image32, init="identty")


def test_a_zero_feature_map_does_not_pass_for_an_identity_module():
    """timm's ResNet branches are exactly 0 at random init (zero_init_last) and SE(0) == 0; SE is still
    gated, because the identity test runs on a random map, not on the site's own."""
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    host = timm.create_model("resnet18", pretrained=False, num_classes=5).eval()
    model = inject_attention(host, "se", branch="BasicBlock", example_input=X16[:1], init="identity")
    assert all(s.gate_params == s.channels for s in model.injection_report.sites)
