"""The backbone contract (import with ``from ..contract import ...``). Two layers:

* single checks (``check_*``): parameter counts, forward + backward, heads / ``num_classes`` / ``in_chans``,
  FX trace == eager, deterministic init, injection (and the injector's token-site error), weight loading
  against torchvision / timm, fixed-input-size errors;
* :class:`ContractCase` + :func:`contract_tests`: what a test file states about one model (names, reference
  count, sizes, block class names), turned into one parametrized test that runs the contract checks which
  apply, so each test file keeps only what is specific to its model.

The inputs and builds the checks use are in :mod:`tests.backbones.builders`.
"""
from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple, Union

import pytest
import timm
import torch
import torch.fx
import torch.nn as nn

from plugattn.backbones import BACKBONES, create_backbone, list_backbones, load_external_weights
from plugattn.inject import inject_attention
from plugattn.parameters import count_parameters
from plugattn.testing import assert_rel_close, relative_error

from .builders import materialize_random, on_meta, randomize_, seeded_batch, timm_param_count

LOAD_TOLERANCE = 1e-4  # the backbone contract: outputs after loading external weights match to 1e-4


# ----------------------------------------------------------------------------------------------- registry, counts
def check_registered(name: str, family: str, created_as: Optional[str] = None, model_class: Optional[type] = None,
                     params: Optional[int] = None, **kwargs) -> nn.Module:
    """``name`` is listed in ``list_backbones(family)``; ``create_backbone(created_as or name, num_classes=3)``
    builds it (an instance of ``model_class`` when given); the registry records ``params`` when given.
    Returns the created model for model-specific assertions."""
    assert name in list_backbones(family)
    model = create_backbone(created_as or name, num_classes=3, **kwargs)
    if model_class is not None:
        assert isinstance(model, model_class)
    if params is not None:
        assert BACKBONES.get(name).info["params"] == params
    return model


def check_param_count(model: nn.Module, reference: int, rel_tol: float = 0.005) -> None:
    count = count_parameters(model)
    assert abs(count - reference) <= rel_tol * reference, f"{count:,} parameters, reference {reference:,}"


def check_reference_count(factory: Callable[..., nn.Module], registry_name: str, params: Optional[int],
                          timm_name: Optional[str] = None) -> None:
    """Ours has exactly ``params`` parameters when given (also timm's ``timm_name`` count when given) and
    matches the reference count the registry records for ``registry_name``: within 0.5%, or, where the paper
    only gives a rounded figure (``params_rounded_to``), rounding to it (the rule of test_registry.py)."""
    ours = on_meta(factory)
    if params is not None:
        assert count_parameters(ours) == params
    else:
        params = count_parameters(ours)
    if timm_name is not None:
        assert timm_param_count(timm_name) == params
    info = BACKBONES.get(registry_name).info
    rounding = info.get("params_rounded_to")
    if rounding:
        assert round(params / rounding) * rounding == info["params"], f"{params:,} does not round to {info['params']:,}"
    else:
        check_param_count(ours, info["params"])


def check_reference_layout(factory: Callable[..., nn.Module], reference_factory: Callable[..., nn.Module],
                           reference_params: int, registry_name: Optional[str] = None) -> None:
    """Ours and the reference both have ``reference_params`` parameters and the same state_dict
    keys, in the same order, with the same shapes; the registry records that count for ``registry_name``
    when given."""
    if registry_name is not None:
        assert BACKBONES.get(registry_name).info["params"] == reference_params
    ours, theirs = on_meta(factory), on_meta(reference_factory)
    assert count_parameters(ours) == reference_params
    assert count_parameters(theirs) == reference_params
    ours_sd, theirs_sd = ours.state_dict(), theirs.state_dict()
    assert list(ours_sd) == list(theirs_sd)
    assert all(ours_sd[k].shape == theirs_sd[k].shape for k in ours_sd)


# ----------------------------------------------------------------------------------------------- running
def check_forward_backward(model: nn.Module, x: torch.Tensor, num_classes: int) -> None:
    """Train-mode forward, then every parameter receives a finite gradient."""
    model.train()
    model.zero_grad(set_to_none=True)
    out = model(x)
    assert out.shape == (x.shape[0], num_classes)
    assert out.dtype == x.dtype and torch.isfinite(out).all()
    out.square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"no gradient reached {name}"
        assert torch.isfinite(p.grad).all(), f"non-finite gradient in {name}"
    model.zero_grad(set_to_none=True)


def check_fx_matches_eager(model: nn.Module, *inputs: torch.Tensor) -> None:
    """The FX-traced model (traced once) equals eager on every input."""
    model.eval()
    traced = torch.fx.symbolic_trace(model)
    with torch.no_grad():
        for x in inputs:
            expected = model(x)
            assert_rel_close(traced(x), expected, what="fx-traced output")


def check_head_variants(factory: Callable[..., nn.Module], x: torch.Tensor, num_features: int,
                        feature_hw: Optional[tuple] = None, map_features: bool = True) -> None:
    """num_classes=0 gives pooled features; other counts and in_chans are honoured (shape-only, on meta).
    ``map_features``: forward_features is a (B, num_features, ...) map (False for token models)."""
    x = x.to("meta")
    headless = on_meta(factory, num_classes=0)
    assert headless(x).shape == (x.shape[0], num_features)
    if map_features:
        features = headless.forward_features(x)
        assert features.shape[:2] == (x.shape[0], num_features)
        if feature_hw is not None:
            assert tuple(features.shape[2:]) == feature_hw
    assert on_meta(factory, num_classes=7)(x).shape == (x.shape[0], 7)
    gray = x[:, :1]
    assert on_meta(factory, num_classes=5, in_chans=1)(gray).shape == (x.shape[0], 5)


def check_heads(factory: Callable[..., nn.Module], pooled_width: int, feature_shape: Tuple[int, ...],
                size: int = 64, default_input_size: int = 224) -> None:
    """With real weights: num_classes=7 gives 7 logits, num_classes=0 the pooled features; forward_features'
    shape (without the batch); one input channel works; the default input size is recorded."""
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        assert factory(num_classes=7).eval()(x).shape == (1, 7)
        headless = factory(num_classes=0).eval()
        assert headless.num_classes == 0
        assert headless(x).shape == (1, pooled_width)
        assert tuple(headless.forward_features(x).shape) == (1,) + tuple(feature_shape)
        one_channel = factory(num_classes=3, in_chans=1).eval()
        assert one_channel(torch.randn(1, 1, size, size)).shape == (1, 3)
    assert headless.default_input_size == default_input_size


def check_deterministic_init(factory: Callable[..., nn.Module], **kwargs) -> None:
    """Same seed, same weights; another seed, other weights."""
    states = []
    for seed in (0, 0, 1):
        torch.manual_seed(seed)
        states.append(factory(**kwargs).state_dict())
    for key, value in states[0].items():
        assert torch.equal(value, states[1][key]), f"{key} differs between two builds with one seed"
    assert any(
        not torch.equal(value, states[2][key]) for key, value in states[0].items() if value.is_floating_point()
    ), "a different seed gave identical weights"


def check_fixed_input_size(model: nn.Module, built_for: int, other: int) -> None:
    """An input of another size raises the clear ``ValueError`` (naming the model, both sizes) in eager
    mode and in the FX-traced model, where the size check is a graph node run on real tensors."""
    wrong = torch.randn(1, 3, other, other)
    expected = (rf"{type(model).__name__} is defined for {built_for}x{built_for} inputs only.*"
                rf"got input of shape \(1, 3, {other}, {other}\)")
    with pytest.raises(ValueError, match=expected):
        model(wrong)
    with pytest.raises(ValueError, match=expected):
        torch.fx.symbolic_trace(model)(wrong)


def check_mobile_bad_arguments(factory: Callable[..., nn.Module]) -> None:
    """The width-multiplier CNN arguments are validated, each error naming its argument."""
    with pytest.raises(ValueError, match="num_classes"):
        factory(num_classes=-1)
    with pytest.raises(ValueError, match="in_chans"):
        factory(in_chans=0)
    with pytest.raises(ValueError, match="width_mult"):
        factory(width_mult=0.0)
    with pytest.raises(ValueError, match="dropout"):
        factory(dropout=1.5)


# ----------------------------------------------------------------------------------------------- injection
def check_injection(model: nn.Module, block: str, x: torch.Tensor, expected_sites: int,
                    attention: str = "eca") -> None:
    """inject_attention after every ``block`` keeps the model's class and the result still runs."""
    model.eval()
    injected = inject_attention(model, attention, after=block, example_input=x)
    report = injected.injection_report
    assert type(injected) is type(model) and report.mode == "hook"
    assert len(report.sites) == expected_sites
    assert all(site.site_class == block for site in report.sites)
    with torch.no_grad():
        out = injected(x)
    assert out.shape == model(x).shape and torch.isfinite(out).all()


def check_token_site_error(model: nn.Module, block: str, x: torch.Tensor) -> None:
    """Injecting after a block that produces tokens (B, N, C) gives the injector's clear error."""
    with pytest.raises(ValueError, match=r"\(B, C, H, W\) feature map"):
        inject_attention(model.eval(), "eca", after=block, example_input=x)


# ----------------------------------------------------------------------------------------------- weights
def check_load_matches(ours: nn.Module, reference: nn.Module, source: str, x: torch.Tensor) -> None:
    """Copy the reference's (random) weights into ours; eval outputs then agree to 1e-4."""
    reference.eval()
    load_external_weights(ours, reference.state_dict(), source)
    ours.eval()
    with torch.no_grad():
        expected = reference(x)
        actual = ours(x)
    err = relative_error(actual, expected)
    assert err <= LOAD_TOLERANCE, f"{source} weights: relative error {err:.2e} > {LOAD_TOLERANCE:.0e}"


def check_random_reference_loads(factory: Callable[..., nn.Module], reference_factory: Callable[..., nn.Module],
                                 source: str, x: torch.Tensor, seed: int = 3) -> None:
    """Build the reference with seeded random weights, load them into ours, compare outputs."""
    reference = materialize_random(reference_factory, seed=seed)
    ours = on_meta(factory).to_empty(device="cpu")
    check_load_matches(ours, reference, source, x)


def check_bad_load_raises(ours: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """A state_dict with a dropped key and a mis-shaped tensor is refused, naming both."""
    broken = dict(state_dict)
    dropped = next(k for k in broken if k.endswith("weight"))
    del broken[dropped]
    last_weight = [k for k in broken if k.endswith("weight")][-1]
    broken[last_weight] = torch.zeros(3, 3)
    with pytest.raises(ValueError, match="missing keys.*mis-shaped keys"):
        load_external_weights(ours, broken, source)


def check_keys_match_timm(factory: Callable[..., nn.Module], timm_name: str, **kwargs) -> None:
    """Our state_dict (after conversion of timm's) has exactly timm's keys and shapes."""
    ours = on_meta(factory, **kwargs)
    with torch.device("meta"):
        theirs = timm.create_model(timm_name, pretrained=False, **kwargs).state_dict()
    convert = getattr(ours, "convert_external_state_dict", None)
    mapped: Dict[str, torch.Tensor] = convert(theirs, "timm") if convert is not None else theirs
    own = ours.state_dict()
    assert sorted(own) == sorted(mapped)
    assert all(own[k].shape == mapped[k].shape for k in own)


def check_timm_outputs_match(ours: nn.Module, timm_name: str, x: torch.Tensor, seed: int = 0,
                             on_meta: bool = False, **timm_kwargs) -> None:
    """Give timm's model seeded random weights (every tensor, so a misplaced one shows), load them into
    ours and compare eval outputs (relative error <= 1e-4). ``on_meta`` skips timm's own init (big
    models whose buffers are all floating point)."""
    if on_meta:
        with torch.device("meta"):
            reference = timm.create_model(timm_name, pretrained=False, **timm_kwargs)
        reference = reference.to_empty(device="cpu")
    else:
        reference = timm.create_model(timm_name, pretrained=False, **timm_kwargs)
    randomize_(reference, seed)
    check_load_matches(ours, reference, "timm", x)


# ----------------------------------------------------------------------------------------------- per-model contract
@dataclasses.dataclass(frozen=True)
class ContractCase:
    """What a test file states about its model; :func:`contract_tests` runs the contract checks that apply.

    ``factory`` builds the paper variant; its seeded ``num_classes=10`` eval-mode build is the module's
    ``model`` fixture (:func:`model_fixture`; named ``fixture`` in files with several cases), shared by the
    file's own tests.
    """

    factory: Callable[..., nn.Module]
    name: str  # registry name
    family: str  # "cnn" | "vit" | "mlp"
    num_features: int  # width of the num_classes=0 output
    created_as: Optional[str] = None  # create_backbone(created_as) honours num_classes=3 in its Linear head
    params: Optional[int] = None  # exact count of factory(), the reference (cited in the test file)
    reference_params: Optional[int] = None  # the cited reference count, recorded as is by the registry;
    # factory() is within 0.5% of it (or rounds to it where the registry says ``params_rounded_to``)
    timm_name: Optional[str] = None  # timm's same variant: its count and state_dict keys equal ours
    size: int = 64  # input side for forward/backward, heads, FX and injection
    batch: int = 2  # forward/backward batch (seeded input; FX and injection use its first image)
    train_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # the forward/backward build
    train_on_fixture: bool = False  # forward/backward on the ``model`` fixture (num_classes=10, put back in
    # eval mode), not on a fresh num_classes=4 build with ``train_kwargs``
    fx_sizes: Sequence[Union[int, Tuple[int, int]]] = ()  # FX == eager also on one (unseeded) image of each
    # of these sides (or (h, w) sizes)
    map_features: bool = False  # forward_features is a (B, C, h, w) map (else tokens, not checked here)
    feature_hw: Optional[Tuple[int, int]] = None  # that map's (h, w) at ``size``
    init_factory: Optional[Callable[..., nn.Module]] = None  # a small config for the determinism check
    init_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    inject_sites: Sequence[Tuple[str, int]] = ()  # (block class name, sites) injected after, fx mode
    token_blocks: Sequence[str] = ()  # blocks whose tokens the injector refuses with its clear error
    model_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # for the ``model`` fixture
    build_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # every build above (e.g. img_size)
    model_class: Optional[type] = None  # create_backbone(created_as) builds one (checked instead of its head)
    default_input_size: int = 224  # recorded by the factory's default build
    feature_shape: Optional[Tuple[int, ...]] = None  # the ``model`` fixture's forward_features(input()) shape
    fixed_size_other: Optional[int] = None  # the model is defined at ``size`` only: this side raises
    heads_with_weights: bool = False  # heads checked on real seeded builds at batch 1 (check_heads: num_classes
    # 7 / 0, in_chans 1, forward_features per image = feature_shape[1:], default_input_size), not on meta
    fixture: str = "model"  # the name of the model fixture (one per case where a file has several)
    skip: Sequence[str] = ()  # contract checks the test file states long-hand (another model or input)

    def input(self) -> torch.Tensor:
        return seeded_batch(self.size, batch=self.batch)

    def build(self) -> nn.Module:
        torch.manual_seed(0)
        return self.factory(num_classes=10, **{**self.build_kwargs, **self.model_kwargs}).eval()


def _check_registered(case: ContractCase, request) -> None:
    model = check_registered(case.name, case.family, case.created_as, case.model_class, **case.build_kwargs)
    if case.model_class is None:
        assert model.head.out_features == 3


def _check_param_count(case: ContractCase, request) -> None:
    if case.reference_params is not None:
        assert BACKBONES.get(case.name).info["params"] == case.reference_params
    check_reference_count(case.factory, case.name, case.params, case.timm_name)


def _check_timm_keys(case: ContractCase, request) -> None:
    check_keys_match_timm(case.factory, case.timm_name)


def _check_forward_backward(case: ContractCase, request) -> None:
    if case.train_on_fixture:
        model = request.getfixturevalue(case.fixture)
        check_forward_backward(model, case.input(), 10)
        model.eval()
        return
    torch.manual_seed(0)
    check_forward_backward(case.factory(num_classes=4, **case.build_kwargs, **case.train_kwargs), case.input(), 4)


def _check_head_variants(case: ContractCase, request) -> None:
    if case.heads_with_weights:
        check_heads(partial(case.factory, **case.build_kwargs), case.num_features, case.feature_shape[1:],
                    size=case.size, default_input_size=case.default_input_size)
        return
    x = torch.zeros(case.batch, 3, case.size, case.size)
    check_head_variants(partial(case.factory, **case.build_kwargs), x, case.num_features, case.feature_hw,
                        map_features=case.map_features)


def _check_fx(case: ContractCase, request) -> None:
    inputs = []
    for side in case.fx_sizes:
        height, width = (side, side) if isinstance(side, int) else side
        inputs.append(torch.randn(1, 3, height, width))
    check_fx_matches_eager(request.getfixturevalue(case.fixture), *inputs, case.input())


def _check_features(case: ContractCase, request) -> None:
    assert on_meta(case.factory).default_input_size == case.default_input_size
    if case.feature_shape is not None:
        with torch.no_grad():
            features = request.getfixturevalue(case.fixture).forward_features(case.input())
        assert tuple(features.shape) == tuple(case.feature_shape)


def _check_fixed_input_size(case: ContractCase, request) -> None:
    check_fixed_input_size(request.getfixturevalue(case.fixture), case.size, case.fixed_size_other)


def _check_deterministic_init(case: ContractCase, request) -> None:
    check_deterministic_init(case.init_factory, **case.init_kwargs)


def _check_injection(case: ContractCase, request) -> None:
    model, x = request.getfixturevalue(case.fixture), case.input()[:1]
    for block, sites in case.inject_sites:
        check_injection(model, block, x, expected_sites=sites)
    for block in case.token_blocks:
        check_token_site_error(model, block, x)


_CONTRACT_CHECKS: Dict[str, Tuple[Callable[[ContractCase, Any], None], Callable[[ContractCase], bool]]] = {
    "registered": (_check_registered, lambda case: case.created_as is not None),
    "param_count": (_check_param_count, lambda case: case.params is not None or case.reference_params is not None),
    "timm_keys": (_check_timm_keys, lambda case: case.timm_name is not None),
    "forward_backward": (_check_forward_backward, lambda case: True),
    "head_variants": (_check_head_variants, lambda case: True),
    "features": (_check_features, lambda case: not case.heads_with_weights),  # else in head_variants
    "fixed_input_size": (_check_fixed_input_size, lambda case: case.fixed_size_other is not None),
    "fx_matches_eager": (_check_fx, lambda case: True),
    "deterministic_init": (_check_deterministic_init, lambda case: case.init_factory is not None),
    "injection": (_check_injection, lambda case: bool(case.inject_sites or case.token_blocks)),
}


def contract_tests(case: ContractCase) -> Callable:
    """One parametrized test running every contract check ``case`` supplies the data for; assign it to a
    ``test_*`` name in the test file (``test_contract = contract_tests(CASE)``)."""
    unknown = set(case.skip) - set(_CONTRACT_CHECKS)
    assert not unknown, f"skip names no contract check: {sorted(unknown)}"
    assert not case.heads_with_weights or case.feature_shape is not None, "heads_with_weights needs feature_shape"
    assert not (case.train_on_fixture and case.train_kwargs), "train_kwargs need a fresh build"
    names = [name for name, (_, applies) in _CONTRACT_CHECKS.items() if applies(case) and name not in case.skip]

    @pytest.mark.parametrize("check", names)
    def test_contract(check: str, request) -> None:
        _CONTRACT_CHECKS[check][0](case, request)

    return test_contract
