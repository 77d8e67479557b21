"""added_parameters / host_parameters (and the named variants) on injected timm and torchvision models:
a partition of the parameters, named as the model names them, usable as optimizer groups and for freezing."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from plugattn.inject import (
    added_module_names,
    added_parameters,
    host_parameters,
    inject_attention,
    named_added_parameters,
    named_host_parameters,
)

X = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(21))
TARGETS = torch.tensor([1, 2])


def build(source: str, init: str = "identity"):
    torch.manual_seed(0)
    if source == "timm":
        timm = pytest.importorskip("timm")
        # zero_init_last=False: at random init timm zeroes each branch's last BatchNorm, so the branch
        # is 0 and nothing on it can learn while the host is frozen (gate or not); trained weights are not 0
        host = timm.create_model("resnet18", pretrained=False, num_classes=5, zero_init_last=False)
        selector = "BasicBlock"
    else:
        torchvision = pytest.importorskip("torchvision")
        host = torchvision.models.resnet18(num_classes=5)
        selector = "basicblock"
    return host, inject_attention(host, "se", branch=selector, example_input=X[:1], init=init)


@pytest.mark.parametrize("source", ["timm", "torchvision"])
@pytest.mark.parametrize("init", ["default", "identity"])
def test_partition_and_names(source, init):
    host, model = build(source, init)
    added, host_named = named_added_parameters(model), named_host_parameters(model)
    assert [n for n, _ in host_named] == [n for n, _ in host.named_parameters()]
    assert sorted(n for n, _ in added + host_named) == sorted(n for n, _ in model.named_parameters())
    state = model.state_dict()
    assert all(torch.equal(state[n], p) for n, p in added + host_named)
    assert sum(p.numel() for p in added_parameters(model)) == model.injection_report.params_added
    assert added_module_names(model) == [s.attention for s in model.injection_report.sites]
    if init == "identity":
        first = model.injection_report.sites[0].attention  # layer1.0.se (layer1.0.se_1 in timm, whose blocks have .se)
        assert f"{first}.gamma" in dict(added) and f"{first}.attention.fc1.weight" in dict(added)
    assert len(host_parameters(model)) == len(host_named)


@pytest.mark.parametrize("source", ["timm", "torchvision"])
def test_two_param_groups_and_a_frozen_host(source):
    _, model = build(source)
    model.train()
    for p in host_parameters(model):
        p.requires_grad_(False)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.SGD([
        {"params": host_parameters(model), "lr": 1e-3},
        {"params": added_parameters(model), "lr": 1e-1},
    ], momentum=0.9)
    assert [len(g["params"]) for g in optimizer.param_groups] == [len(host_parameters(model)), len(added_parameters(model))]
    for _ in range(2):  # the attention behind each gate learns from the second step
        optimizer.zero_grad()
        F.cross_entropy(model(X), TARGETS).backward()
        optimizer.step()
    assert all(p.grad is None for p in host_parameters(model))
    assert all(torch.equal(p, before[n]) for n, p in named_host_parameters(model))
    changed = [n for n, p in named_added_parameters(model) if not torch.equal(p, before[n])]
    assert len(changed) == len(added_parameters(model)), "every added parameter moved"


def test_wrapped_model_and_no_report():
    _, model = build("torchvision")
    wrapper = nn.Sequential(model, nn.Softmax(dim=1))
    names = [n for n, _ in named_added_parameters(wrapper)]
    assert names and all(n.startswith("0.layer") for n in names)
    assert set(names) <= dict(wrapper.named_parameters()).keys()
    with pytest.raises(ValueError, match="carries no injection report"):
        added_parameters(nn.Conv2d(3, 3, 1))
