"""GCModule (Cao et al., ICCVW 2019): generic checks for both fusions, identity at init, Eq. 3 re-stated
(softmax over positions included), tiling invariance, parameter count, registry and argument errors."""
import pytest
import torch
from .attention_checks import ALL_CHECKS, assert_tiling_invariant, perturb_parameters

from plugattn.attention import GCModule, create_attention
from plugattn.parameters import count_parameters
from plugattn.testing import assert_rel_close

CHANNELS = 8


@pytest.mark.parametrize("fusion", ["add", "mul"])
@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda c: c.__name__)
def test_generic_checks(check, fusion):
    check(lambda: GCModule(CHANNELS, reduction=2, fusion=fusion), CHANNELS)


def test_identity_at_init_with_add_fusion():
    x = torch.randn(2, 64, 7, 5)
    assert torch.equal(GCModule(64)(x), x)


def test_mul_fusion_starts_at_half():
    # last conv zero-initialised: t = 0, sigmoid(0) = 1/2
    x = torch.randn(2, 64, 7, 5)
    assert torch.equal(GCModule(64, fusion="mul")(x), x * 0.5)


def test_parameter_count_at_64_channels():
    channels, hidden = 64, 64 // 16
    context_conv = channels  # W_k: C -> 1, no bias
    first = channels * hidden + hidden  # W_v1 with bias
    layer_norm = 2 * hidden
    second = hidden * channels + channels  # W_v2 with bias
    assert count_parameters(GCModule(64)) == context_conv + first + layer_norm + second == 652


def _reference(module, x):
    """Eq. 3 of the paper with explicit sums over positions, for one sample at a time."""
    w_k = module.conv_mask.weight.reshape(-1)
    conv1, norm, _, conv2 = module.transform
    outputs = []
    for sample in x:  # (C, H, W)
        positions = sample.reshape(sample.shape[0], -1)  # (C, N)
        logits = w_k @ positions  # (N,)
        weights = logits.exp() / logits.exp().sum()
        context = (positions * weights).sum(dim=1)  # (C,)
        hidden = conv1.weight.reshape(conv1.out_channels, -1) @ context + conv1.bias
        hidden = (hidden - hidden.mean()) / (hidden.var(unbiased=False) + norm.eps).sqrt()
        hidden = torch.relu(hidden * norm.weight.reshape(-1) + norm.bias.reshape(-1))
        term = conv2.weight.reshape(conv2.out_channels, -1) @ hidden + conv2.bias
        fused = sample + term[:, None, None] if module.fusion == "add" else sample * torch.sigmoid(term)[:, None, None]
        outputs.append(fused)
    return torch.stack(outputs)


@pytest.mark.parametrize("fusion", ["add", "mul"])
def test_matches_equation_3(fusion):
    module = perturb_parameters(GCModule(16, reduction=4, fusion=fusion), seed=1)
    with torch.no_grad():
        module.conv_mask.weight.mul_(10)  # peaked softmax: forgetting it would change the output a lot
    x = torch.randn(2, 16, 5, 4)
    assert_rel_close(module(x), _reference(module, x))


def test_context_is_a_softmax_weighted_average():
    module = perturb_parameters(GCModule(16, reduction=4))
    x = torch.randn(2, 16, 5, 4)
    # constant input: any convex combination of positions returns that constant
    constant = torch.ones(1, 16, 6, 6) * torch.arange(16.0).reshape(1, 16, 1, 1)
    assert_rel_close(module.context(constant), torch.arange(16.0).reshape(1, 16, 1, 1))
    context = module.context(x).reshape(2, 16)
    assert (context <= x.amax(dim=(2, 3)) + 1e-6).all() and (context >= x.amin(dim=(2, 3)) - 1e-6).all()


@pytest.mark.parametrize("fusion", ["add", "mul"])
def test_tiling_invariance(fusion):
    module = perturb_parameters(GCModule(CHANNELS, reduction=2, fusion=fusion))
    assert_tiling_invariant(module, CHANNELS)


def test_hidden_width_at_least_one():
    assert GCModule(8, reduction=16).hidden_channels == 1


@pytest.mark.parametrize("name", ["gc", "GC", "gcnet", "global_context", "gcmodule"])
def test_create_by_name(name):
    assert isinstance(create_attention(name, 64), GCModule)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(channel=64, fusion="ad"), "fusion.*did you mean 'add'"),
        (dict(channel=64, fusion="concat"), "fusion"),
        (dict(channel=0), "channel"),
        (dict(channel=64, reduction=0), "reduction"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GCModule(**kwargs)
