"""The record :func:`inject_attention` leaves on the model it returns: one entry per site."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

import torch.nn as nn

REPORT_ATTRIBUTE = "injection_report"


@dataclass
class InjectionSite:
    """One inserted attention module.

    Attributes:
        site: qualified name of the matched module (``"layer1.0"``).
        site_class: class name of the matched module (``"Bottleneck"``).
        position: ``"after"``, ``"before"`` or ``"branch"``.
        channels: C of the (B, C, H, W) feature map the attention sees.
        attention: qualified name of the new module (``"layer1.0.eca"``).
        attention_class: class name of the new module (``"ECALayer"``).
        params: number of parameters it adds (gate included).
        shape: the example feature-map shape found at the site.
        init: ``"default"`` or ``"identity"`` (see :mod:`plugattn.inject.identity`).
        gate_params: parameters of the identity gate (C), 0 without one; a gated site's module at
            ``attention`` is an ``IdentityGate`` holding the ``attention_class`` module as ``.attention``.
    """

    site: str
    site_class: str
    position: str
    channels: int
    attention: str
    attention_class: str
    params: int
    shape: tuple = ()
    # For "branch": the rewritten block's original class, emptied of children and tensors, so
    # remove_attention can rebuild it (see removal.py). Not shown.
    original_block: Optional[nn.Module] = field(default=None, repr=False, compare=False)
    init: str = "default"
    gate_params: int = 0


@dataclass
class InjectionReport:
    """What :func:`inject_attention` did: the sites, which path it took and why.

    Attributes:
        sites: one :class:`InjectionSite` per inserted module, in model order (earlier injections first).
        mode: ``"fx"`` (the model was traced into a GraphModule) or ``"hook"`` (forward hooks).
        selector: the selector, as text.
        fallback_reason: for ``mode="auto"`` runs that fell back to hooks, why tracing failed.

    Example:
        >>> report = InjectionReport(sites=[], mode="fx", selector="class name 'bottleneck'")
        >>> report.params_added
        0
    """

    sites: List[InjectionSite]
    mode: str
    selector: str
    fallback_reason: Optional[str] = None
    # The caller's root module emptied of children and tensors, to rebuild it on removal. Not shown.
    original_root: Optional[nn.Module] = field(default=None, repr=False, compare=False)

    @property
    def params_added(self) -> int:
        """Total parameters added by every site."""
        return sum(s.params for s in self.sites)

    def __str__(self) -> str:
        header = f"{'site':<28} {'class':<18} {'position':<8} {'C':>5} {'attention':<32} {'params':>7}"
        lines = [f"InjectionReport(mode={self.mode!r}, selector={self.selector}, sites={len(self.sites)})"]
        if self.fallback_reason:
            lines.append(f"  fell back to hooks: {self.fallback_reason}")
        lines.append("  " + header)
        for s in self.sites:
            lines.append(
                f"  {s.site:<28} {s.site_class:<18} {s.position:<8} {s.channels:>5} "
                f"{s.attention + ' (' + s.attention_class + ')':<32} {s.params:>7}"
            )
        lines.append(f"  total parameters added: {self.params_added}")
        lines.extend(identity_lines(self.sites))
        return "\n".join(lines)


def identity_lines(sites: List[InjectionSite]) -> List[str]:
    """The report's lines on ``init="identity"`` sites: how many are gated, what the gates cost.

    Example:
        >>> identity_lines([InjectionSite("a", "A", "after", 8, "a.se", "SELayer", 50, init="identity", gate_params=8)])
        ['  init identity: 1 of 1 sites gated, y = x + gamma * (attn(x) - x) with gamma (C,) = 0: 8 gate parameters (in the total)']
    """
    identity = [s for s in sites if s.init == "identity"]
    if not identity:
        return []
    gated = [s for s in identity if s.gate_params]
    lines = []
    if gated:
        lines.append(
            f"  init identity: {len(gated)} of {len(sites)} sites gated, y = x + gamma * (attn(x) - x) with gamma (C,) = 0: "
            f"{sum(s.gate_params for s in gated):,} gate parameters (in the total)"
        )
    ungated = sorted({s.attention_class for s in identity if not s.gate_params})
    if ungated:
        lines.append(f"  init identity: {', '.join(ungated)} already the identity at init, inserted without a gate")
    return lines


def get_injection_report(model: nn.Module) -> InjectionReport:
    """The :class:`InjectionReport` of a model returned by :func:`inject_attention`.

    Example:
        >>> get_injection_report(nn.Identity())
        Traceback (most recent call last):
        ...
        ValueError: model Identity carries no injection report; it was not returned by inject_attention
    """
    report = getattr(model, REPORT_ATTRIBUTE, None)
    if not isinstance(report, InjectionReport):
        raise ValueError(
            f"model {type(model).__name__} carries no injection report; it was not returned by inject_attention"
        )
    return report
