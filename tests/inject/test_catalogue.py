"""The identity-equivalence contract on a catalogue of hosts nobody here wrote (random weights,
64x64 inputs, batch 2): see contract.py for what is checked."""
import pytest
import torch

from .contract import check_contract

X = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(11))
torchvision = pytest.importorskip("torchvision")
timm = pytest.importorskip("timm")
tv = torchvision.models


def test_torchvision_resnet50_branch():
    check_contract(tv.resnet50, (X,), branch="bottleneck")


def test_torchvision_googlenet_keeps_its_train_mode_outputs():
    injected = check_contract(lambda: tv.googlenet(aux_logits=True, init_weights=True), (X,), after="Inception")
    assert injected.training is False and len(injected.injection_report.sites) == 9
    injected.train()
    assert type(injected(X)).__name__ == "GoogLeNetOutputs"  # the host's train-mode namedtuple


def test_torchvision_regnet_y_400mf_branch():
    injected = check_contract(tv.regnet_y_400mf, (X,), branch="ResBottleneckBlock")
    assert injected.injection_report.sites[0].hooked.endswith(".f")  # proj(x) + f(x): f is the branch


def test_torchvision_mobilenet_v2_branch_skips_blocks_without_skip():
    injected = check_contract(tv.mobilenet_v2, (X,), branch="InvertedResidual")
    report = injected.injection_report
    # Sandler et al. Table 2: 17 bottlenecks, 10 with a residual connection (stride 1, same width)
    assert len(report.sites) == 10 and len(report.skipped) == 7


def test_torchvision_convnext_tiny_stochastic_depth_in_train():
    check_contract(lambda: tv.convnext_tiny(stochastic_depth_prob=0.2), (X,), branch="CNBlock")


def test_torchvision_densenet121_memory_efficient_checkpoints():
    injected = check_contract(lambda: tv.densenet121(memory_efficient=True, drop_rate=0.2), (X,),
                              after="_DenseBlock", expect_checkpoints=True)
    assert [s.attention for s in injected.injection_report.sites][0] == "features_denseblock1_identity"


def _timm_resnet50():
    model = timm.create_model("resnet50", pretrained=False, drop_rate=0.3, drop_path_rate=0.1)
    model.set_grad_checkpointing()
    return model


def _timm_methods(model):
    features = model.forward_features(X)
    model.set_grad_checkpointing(False)
    model.reset_classifier(7)
    return features, model(X), model.get_classifier().weight.shape, model.feature_info, model.pretrained_cfg


def test_timm_resnet50_dropout_and_gradient_checkpointing():
    injected = check_contract(_timm_resnet50, (X,), branch="Bottleneck", expect_checkpoints=True, methods=_timm_methods)
    assert injected.grad_checkpointing is False  # set_grad_checkpointing worked on the injected model
    assert injected.get_classifier().out_features == 7


@pytest.mark.parametrize("feature_cls", [None, "hook"])
def test_timm_features_only(feature_cls):
    def build():
        extra = {"feature_cls": feature_cls} if feature_cls else {}
        return timm.create_model("resnet18", pretrained=False, features_only=True, **extra)

    injected = check_contract(build, (X,), after="BasicBlock")
    injected.eval()
    features = injected(X)
    assert [f.shape[1] for f in features] == [64, 64, 128, 256, 512]


def test_timm_hrnet_w18_small_high_resolution_modules(capfd):
    # item 5: channel inference used to fail inside ShapeProp ('immutable_list' object does not support
    # mutation) for any selector leaving the HighResolutionModules unopened, printing a traceback first
    injected = check_contract(lambda: timm.create_model("hrnet_w18_small", pretrained=False), (X,),
                              after="Bottleneck")
    assert [s.site for s in injected.injection_report.sites] == [
        "layer1.0", "incre_modules.0.0", "incre_modules.1.0", "incre_modules.2.0", "incre_modules.3.0"]
    assert "Traceback" not in capfd.readouterr().err


def test_timm_efficientnet_b0_drop_path():
    check_contract(lambda: timm.create_model("efficientnet_b0", pretrained=False, drop_rate=0.2, drop_path_rate=0.2),
                   (X,), branch="InvertedResidual", methods=lambda m: m.forward_head(m.forward_features(X)))


# ---- hand-written hosts -------------------------------------------------------------------------
from . import inject_models as hosts  # noqa: E402

S = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(12))


@pytest.mark.parametrize("where", ["after", "before", "branch"])
def test_host_with_its_own_hooks_and_namedtuple_output(where):
    injected = check_contract(hosts.HookedHost, (S,), selector="ResidualBlock", where=where)
    injected.eval()
    assert type(injected(S)).__name__ == "HostOutput"


@pytest.mark.parametrize("where", ["after", "before", "branch"])
def test_host_calling_blocks_with_keywords_only(where):
    # item 8: `before` on a block called as self.block(x=x) used to fail with IndexError
    check_contract(hosts.KeywordHost, (S,), selector="ResidualBlock", where=where)


def test_host_with_args_kwargs_forward():
    # item 12: forward(self, x, *args, **kwargs) made the whole model untraceable
    extra = torch.ones(1)
    check_contract(hosts.ArgsKwargsHost, (S, extra), kwargs={"scale": 0.5}, example_input=(S, extra),
                   branch="ResidualBlock")


def test_host_with_data_dependent_control_flow():
    check_contract(hosts.RarelyTakenHost, (S,), after="name:common")


def test_nested_residual_blocks_outer_and_inner():
    outer = check_contract(hosts.NestedHost, (S,), branch="NestedResidual")
    assert outer.injection_report.sites[0].hooked == "stage.proj"
    inner = check_contract(hosts.NestedHost, (S,), branch="ResidualBlock")
    assert [s.hooked for s in inner.injection_report.sites] == ["stage.inner.0.norm_b", "stage.inner.1.norm_b"]


def test_shared_module_host():
    check_contract(hosts.SharedModuleHost, (S,), after="SharedActBlock")


@pytest.mark.parametrize("build, selection", [
    (hosts.HookedHost, {"branch": "ResidualBlock"}),
    (hosts.KeywordHost, {"before": "ResidualBlock"}),
    (lambda: tv.googlenet(aux_logits=True, init_weights=True), {"after": "Inception"}),
])
def test_real_attention_keeps_types_hooks_and_checkpoints(build, selection):
    inputs = (X,) if selection.get("after") == "Inception" else (S,)
    check_contract(build, inputs, attention="eca", **selection)
