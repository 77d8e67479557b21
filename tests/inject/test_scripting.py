"""torch.jit.script of injected models and of every attention module (item 13 of issue 14)."""
import io
import warnings

import pytest
import torch

from plugattn import create_attention, list_attention
from plugattn.inject import inject_attention
from plugattn.inject.hooks import attention_hooks

X = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(9))
torchvision = pytest.importorskip("torchvision")


def script(module):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # "torch.jit.script is deprecated"
        return torch.jit.script(module)


@pytest.mark.parametrize("name", list_attention())
def test_every_attention_module_scripts_and_matches_eager(name):
    module = create_attention(name, 32).eval()
    x = torch.randn(2, 32, 9, 11, generator=torch.Generator().manual_seed(10))
    assert torch.allclose(script(module)(x), module(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("where", ["after", "before", "branch"])
def test_injected_resnet18_scripts(where):
    host = torchvision.models.resnet18().eval()
    script(host)  # the host scripts, so the injected model must
    injected = inject_attention(host, "eca", where=where, selector="BasicBlock", example_input=X[:1]).eval()
    scripted = script(injected)
    assert torch.allclose(scripted(X), injected(X), rtol=1e-5, atol=1e-6)
    assert not torch.allclose(scripted(X), host(X), rtol=1e-4)
    keys = list(scripted.state_dict())
    if where == "branch":  # TorchScript hooks reach only the hooked module's children (scripting.py)
        assert "layer1.0.bn2.eca.conv.weight" in keys and "layer1.0.eca.conv.weight" not in keys
    else:
        assert keys == list(injected.state_dict())
    # scripting worked on a copy: the injected model is unchanged
    assert "layer1.0.eca.conv.weight" in injected.state_dict()
    hooked = injected.get_submodule(injected.injection_report.sites[0].hooked)
    assert len(list(attention_hooks(hooked))) == 1
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer)
    buffer.seek(0)
    assert torch.allclose(torch.jit.load(buffer)(X), injected(X), rtol=1e-5, atol=1e-6)


def test_channels_last_site_scripts():
    from .test_layout import SwinLike

    model = SwinLike().eval()
    x = torch.randn(1, 3, 64, 64)
    injected = inject_attention(model, "eca", after="SwinLikeBlock", example_input=x).eval()
    assert torch.allclose(script(injected)(x), injected(x), rtol=1e-5, atol=1e-6)


def test_container_site_is_a_clear_error():
    injected = inject_attention(torchvision.models.resnet18(), "eca", after="name:layer1", example_input=X[:1])
    with pytest.raises(RuntimeError, match=r"attention on 'layer1' \(Sequential\) lives on the root.*torch.jit.trace"):
        script(injected)
