"""`plugattn inject MODEL ATTENTION --after SELECTOR`: inject, report, run forward + backward, time.

Prints the sites, the parameter and multiply-add totals before and after with the overhead, the
way the attention is attached (plugattn forward hooks at module boundaries), then runs a training-mode forward and
backward pass on the example input (output shape, gradients, the kernel backend of every attention
module) and times inference forward passes of both models.
"""
from __future__ import annotations

import argparse
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from ..inject import inject_attention
from ..inject.identity import INITS, IdentityGate
from ..inject.position import POSITIONS, resolve_position
from ..inject.report import InjectionReport, identity_lines
from ..inject.shapes import default_input_size
from .kernel_backends import record_backends, summarize
from .measure import MAC_COUNTING_NOTE, count_macs, count_parameters, inference_forward_ms
from .models import build_model, check_attention
from .table import format_table


@dataclass
class Injected:
    """The model before and after injection, and the example input used for both."""

    name: str
    base: nn.Module
    model: nn.Module
    example: torch.Tensor

    @property
    def report(self) -> InjectionReport:
        return self.model.injection_report


def build_injected(
    model_spec: str,
    attention: str,
    selector: str,
    position: str = "after",
    input_size: Optional[Sequence[int]] = None,
    batch_size: int = 1,
    seed: int = 0,
    device: str = "cpu",
    init: str = "default",
) -> Injected:
    """Build ``model_spec`` with random weights from ``seed`` and inject ``attention`` at ``selector``.

    The same arguments always give the same weights, which is what ``--save`` round trips rely on.
    The example input comes from its own generator, so it does not shift the model's random stream.

    Example:
        >>> built = build_injected("resnet18", "eca", "basicblock", input_size=(3, 64, 64))  # doctest: +SKIP
        >>> len(built.report.sites)  # doctest: +SKIP
        8
    """
    check_attention(attention)
    if position not in POSITIONS:
        raise ValueError(f"--where must be one of {', '.join(POSITIONS)}, got {position!r}")
    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    torch.manual_seed(seed)
    base, name = build_model(model_spec)
    base.eval()
    size = tuple(input_size) if input_size else default_input_size(base)
    if len(size) != 3 or any(v < 1 for v in size):
        raise ValueError(f"--input-size takes three positive numbers C H W, got {' '.join(map(str, size))}")
    generator = torch.Generator().manual_seed(seed)
    example = torch.randn((batch_size, *size), generator=generator)
    _check_model_accepts(base, example, name)
    model = inject_attention(base, attention, selector, where=position, example_input=example, init=init)
    model.eval()
    return Injected(name, base.to(device), model.to(device), example.to(device))


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def _check_model_accepts(model: nn.Module, example: torch.Tensor, name: str) -> None:
    """One inference pass on the example, so a wrong --input-size is reported as such (not deep in tracing)."""
    try:
        with torch.no_grad():
            model(example)
    except (RuntimeError, ValueError) as error:
        shape = "×".join(map(str, example.shape))
        raise ValueError(f"{name} cannot run on a {shape} input ({_first_line(error)}); "
                         "check --input-size C H W") from None


def _percent(delta: float, base: float) -> str:
    if base == 0:
        return "n/a"
    value = 100.0 * delta / base
    return f"{value:+.2f}%" if abs(value) >= 0.01 or value == 0 else f"{value:+.2g}%"


def _signed(value: int) -> str:
    return f"{value:+,}"


def sites_table(report: InjectionReport) -> str:
    """The sites: qualified name, position, channels, module class, inserted module and parameters added."""
    rows = [
        {
            "site": s.site,
            "position": s.position,
            "channels": s.channels,
            "module": s.site_class,
            "attention": f"{s.attention} ({s.attention_class})",
            "attached": s.attached + (" (B, H, W, C)" if s.channels_last else ""),
            "params added": f"{s.params:,}",
        }
        for s in report.sites
    ]
    return format_table(rows, ["site", "position", "channels", "module", "attention", "attached", "params added"])


def totals_table(params: Tuple[int, int], macs: Tuple[int, int]) -> str:
    """Parameters and GMACs before / after injection, and the overhead."""
    rows = [
        {
            "": "parameters",
            "before": f"{params[0]:,}",
            "after": f"{params[1]:,}",
            "overhead": f"{_signed(params[1] - params[0])} ({_percent(params[1] - params[0], params[0])})",
        },
        {
            "": "multiply-adds",
            "before": f"{macs[0] / 1e9:.4f} GMACs",
            "after": f"{macs[1] / 1e9:.4f} GMACs",
            "overhead": f"{_signed(macs[1] - macs[0])} MACs ({_percent(macs[1] - macs[0], macs[0])})",
        },
    ]
    return format_table(rows, ["", "before", "after", "overhead"])


def path_line(report: InjectionReport) -> str:
    """How the attention is attached (the same for every model since the whole-model fx rewrite went)."""
    skipped = f"; {len(report.skipped)} matched module(s) skipped: {', '.join(s for s, _ in report.skipped)}" if report.skipped else ""
    return ("forward hooks at module boundaries (the model keeps its class, forward code and hooks; "
            f"see 'attached' per site){skipped}")


def _logits(output: object) -> torch.Tensor:
    return output if isinstance(output, torch.Tensor) else output[0]


def insertion_difference(injected: Injected) -> float:
    """max |injected(x) - host(x)| over the logits, eval mode, on the example input."""
    with torch.no_grad():
        before = _logits(injected.base(injected.example)).float()
        after = _logits(injected.model(injected.example)).float()
    return (after - before).abs().max().item()


NORMS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)


@dataclass
class GradientCheck:
    """What the training-mode pass says about the attention parameters' gradients."""

    with_grad: int  # parameter tensors with a finite, nonzero gradient
    total: int  # attention parameter tensors
    zero_sites: List[str]  # sites whose attention got no nonzero gradient at all
    zero_input_sites: List[str]  # those of them whose attention received an all-zero input
    zero_norms: List[str]  # norm layers with an all-zero weight in those sites' modules
    sites: int  # sites whose attention has parameters

    def explanation(self) -> Optional[str]:
        """Why gradients are zero, when the run shows the cause; ``None`` when all are nonzero.

        Example:
            >>> GradientCheck(0, 2, ["a", "b"], ["a", "b"], ["a.bn3", "b.bn3"], 2).explanation()[:60]
            'zero at 2 of 2 sites because their input is exactly 0: the m'
        """
        if not self.zero_sites:
            return None
        count = f"{len(self.zero_sites)} of {self.sites} sites"
        if self.zero_input_sites == self.zero_sites and self.zero_norms:
            shown = ", ".join(self.zero_norms[:2]) + (", ..." if len(self.zero_norms) > 2 else "")
            return (f"zero at {count} because their input is exactly 0: the model zero-initialises the last "
                    f"norm of each residual branch ({shown}: weight = 0), so at initialisation the branch "
                    "outputs 0 and an attention module on it gets no gradient. That is how the model is built "
                    "(as timm's zero_init_last does), not a fault: the gradients flow once training moves that weight")
        if self.zero_input_sites == self.zero_sites:
            return f"zero at {count} because their input is exactly 0"
        return None


def forward_backward(injected: Injected) -> Tuple[torch.Size, GradientCheck, List[Tuple[str, str, int]]]:
    """A training-mode forward and backward pass on the example input.

    Returns the output shape, the :class:`GradientCheck` of the attention parameters, and the
    (class, backend, count) summary of the attention modules.
    """
    model, report = injected.model, injected.report
    attention_modules: Dict[str, nn.Module] = {s.attention: model.get_submodule(s.attention) for s in report.sites}
    # an identity gate's backend is its attention's (a hook there also makes the gate call it)
    recorded = {name: getattr(m, "attention", m) if isinstance(m, IdentityGate) else m for name, m in attention_modules.items()}
    zero_input: Dict[str, bool] = {}
    hooks = [
        module.register_forward_pre_hook(
            lambda m, args, name=name: zero_input.__setitem__(
                name, isinstance(args[0], torch.Tensor) and not bool(args[0].detach().any())))
        for name, module in attention_modules.items()
    ]
    model.train()
    model.zero_grad(set_to_none=True)
    try:
        with record_backends(recorded) as backends:
            logits = _logits(model(injected.example))
        logits.float().square().mean().backward()
    except (RuntimeError, ValueError) as error:  # e.g. BatchNorm on a 1×1 map of a batch of one
        shape = "×".join(map(str, injected.example.shape))
        raise ValueError(f"training-mode forward + backward on a {shape} input failed ({_first_line(error)}); "
                         "try a larger --input-size or --batch-size 2") from None
    finally:
        for hook in hooks:
            hook.remove()
    check = _gradient_check(injected, attention_modules, zero_input)
    model.zero_grad(set_to_none=True)
    model.eval()
    classes = {s.attention: s.attention_class for s in report.sites}
    return logits.shape, check, summarize(classes, backends)


def _has_gradient(p: nn.Parameter) -> bool:
    return p.grad is not None and bool(torch.isfinite(p.grad).all()) and bool(p.grad.any())


def _gradient_check(injected: Injected, attention_modules: Dict[str, nn.Module], zero_input: Dict[str, bool]) -> GradientCheck:
    with_grad = total = 0
    zero_sites, zero_input_sites, zero_norms = [], [], []
    for site in injected.report.sites:
        params = list(attention_modules[site.attention].parameters())
        flags = [_has_gradient(p) for p in params]
        with_grad, total = with_grad + sum(flags), total + len(flags)
        if params and not any(flags):
            zero_sites.append(site.site)
            if zero_input.get(site.attention):
                zero_input_sites.append(site.site)
                host = injected.model.get_submodule(site.site)
                zero_norms += [f"{site.site}.{name}" for name, m in host.named_modules()
                               if isinstance(m, NORMS) and getattr(m, "weight", None) is not None
                               and not bool(m.weight.detach().any())]
    sites = sum(1 for s in injected.report.sites if list(attention_modules[s.attention].parameters()))
    return GradientCheck(with_grad, total, zero_sites, zero_input_sites, zero_norms, sites)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "inject",
        help="inject attention into a model and report sites, cost and speed",
        description="Build MODEL with random weights, insert ATTENTION at every module SELECTOR matches, "
        "and report what changed. Example: plugattn inject resnet50 eca --after bottleneck",
    )
    parser.add_argument("model", help="plugattn backbone name (see 'plugattn list backbones'), torchvision:NAME or timm:NAME")
    parser.add_argument("attention", help="attention name (see 'plugattn list attention')")
    spelled = parser.add_mutually_exclusive_group(required=True)
    for position in POSITIONS:
        spelled.add_argument(
            f"--{position}", metavar="SELECTOR", dest=f"selector_{position}",
            help=f"modules to put attention {position} (a class name such as 'bottleneck', or a qualified-name pattern)"
            if position != "branch" else "residual blocks to put attention on the branch of, before the skip addition",
        )
    parser.add_argument("--where", choices=POSITIONS, help="position for the --after SELECTOR (default: after)")
    parser.add_argument("--input-size", type=int, nargs=3, metavar=("C", "H", "W"),
                        help="example input size (default: the model's own, 3 224 224 for ImageNet models)")
    parser.add_argument("--batch-size", type=int, default=1, help="example batch size (default: 1)")
    parser.add_argument("--repeats", type=int, default=5,
                        help="timing rounds per model, models in turns (median; default: 5)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the weights (default: 0)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="device for the forward/backward and timing (default: cuda when available)")
    parser.add_argument("--init", choices=INITS, default="default",
                        help="'identity': the injected model computes exactly what the model computes until the "
                        "attention learns (a zero-initialised gate per channel); default: each module's own init")
    parser.add_argument("--save", metavar="FILE", help="write the injected model's state_dict here (torch.save)")
    parser.set_defaults(run=run)


def _selector_and_position(args: argparse.Namespace) -> Tuple[str, str]:
    """The selector and its position; ``--after`` is the generic spelling, whose position ``--where`` may change."""
    (spelling, selector), = [(p, getattr(args, f"selector_{p}")) for p in POSITIONS if getattr(args, f"selector_{p}") is not None]
    conflict = "--where {where} contradicts --{spelled}; use --{where} SELECTOR instead"
    return selector, resolve_position(None if spelling == "after" else spelling, args.where, conflict)


def run(args: argparse.Namespace) -> int:
    selector, position = _selector_and_position(args)
    if args.repeats < 1:
        raise ValueError(f"--repeats must be >= 1, got {args.repeats}")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {args.device} but no GPU is visible; use --device cpu")
    if args.save and not Path(args.save).resolve().parent.is_dir():
        raise ValueError(f"--save {args.save}: folder {Path(args.save).resolve().parent} does not exist; create it first")
    injected = build_injected(
        args.model, args.attention, selector, position, args.input_size, args.batch_size, args.seed, args.device,
        args.init,
    )
    report = injected.report
    if args.save:
        torch.save(injected.model.state_dict(), args.save)  # the weights as built, before any training step

    shape_text = "×".join(map(str, injected.example.shape))
    print(f"plugattn inject: {args.attention} {position} {report.selector} in {injected.name} "
          f"({type(injected.base).__name__}), example input {shape_text}, seed {args.seed}")
    print(f"path: {path_line(report)}")
    print(f"\nsites ({len(report.sites)}):")
    print(sites_table(report))
    for line in identity_lines(report.sites):
        print(line.strip())
    delta = insertion_difference(injected)
    print(f"output at insertion (init {args.init}, eval, example input): max |delta logits| = {delta:.6g}"
          + (" (the host's outputs exactly)" if delta == 0 else ""))

    params = (count_parameters(injected.base), count_parameters(injected.model))
    macs = (count_macs(injected.base, injected.example), count_macs(injected.model, injected.example))
    print(f"\ntotals for one {shape_text} input:")
    print(totals_table(params, macs))
    print(f"({MAC_COUNTING_NOTE})")

    out_shape, gradients, backends = forward_backward(injected)
    print(f"\nforward + backward (train mode, {injected.example.device}):")
    print(f"  output shape: {tuple(out_shape)}")
    if gradients.total:
        print(f"  attention parameter tensors with a finite nonzero gradient: {gradients.with_grad}/{gradients.total}")
        explanation = gradients.explanation()
        if explanation:
            print(textwrap.fill(f"({explanation})", width=100, initial_indent="  ", subsequent_indent="   "))
        if any(s.init == "identity" for s in report.sites):
            print("  (init identity: before the first optimizer step only the gates, and the zero-initialised last layers "
                  "of modules that start as the identity, have a gradient; every parameter has one after one step)")
    else:
        print("  attention parameters: none (parameter-free module)")
    for class_name, backend, count in backends:
        print(f"  kernel backend: {class_name} x{count}: {backend}")
    if injected.example.device.type == "cpu" and any(b == "torch (cpu tensor)" for _, b, _ in backends):
        print("  (on CPU the attention modules run their PyTorch reference; the Triton kernels run on CUDA)")

    before_ms, after_ms = inference_forward_ms([injected.base, injected.model], injected.example, args.repeats)
    print(f"\nforward time (inference, median of {args.repeats}, timed in turns): {before_ms:.2f} ms before, "
          f"{after_ms:.2f} ms after, ratio x{after_ms / before_ms:.3f}")
    if args.save:
        print(f"\nsaved the injected model's state_dict ({len(injected.model.state_dict())} tensors) to {args.save}")
    return 0
