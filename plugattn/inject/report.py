"""The record :func:`inject_attention` leaves on the model it returns: one entry per site."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import torch.nn as nn

REPORT_ATTRIBUTE = "injection_report"


@dataclass
class InjectionSite:
    """One inserted attention module.

    Attributes:
        site: qualified name of the matched module (``"layer1.0"``).
        site_class: class name of the matched module (``"Bottleneck"``).
        position: ``"after"``, ``"before"`` or ``"branch"``.
        channels: C of the feature map the attention sees.
        attention: qualified name of the new module (``"layer1.0.eca"``).
        attention_class: class name of the new module (``"ECALayer"``).
        params: number of parameters it adds (gate included).
        shape: the example feature-map shape found at the site, as the host lays it out.
        attached: how the attention is attached: ``"forward hook on layer1.0"``,
            ``"forward pre-hook on layer1.0"``, ``"forward hook on layer1.0.bn3"`` (branch).
        hooked: qualified name of the module carrying the hook.
        channels_last: the site's map is (B, H, W, C); the attention runs on its (B, C, H, W) view.
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
    attached: str = ""
    hooked: str = ""
    channels_last: bool = False
    init: str = "default"
    gate_params: int = 0


@dataclass
class InjectionReport:
    """What :func:`inject_attention` did: the sites, how they are attached and what was skipped.

    Attributes:
        sites: one :class:`InjectionSite` per inserted module, in model order (earlier injections first).
        mode: ``"hook"``: every attention is attached at a module boundary by a plugattn forward
            hook or pre-hook (see :mod:`plugattn.inject.hooks`); nothing is traced or rewritten.
        selector: the selector, as text.
        fallback_reason: always None (kept for compatibility: nothing falls back any more).
        skipped: ``(site, reason)`` for matched modules that got no attention (``branch`` blocks
            without a residual addition; modules the example input did not reach, with
            ``unreached="warn"``).

    Example:
        >>> report = InjectionReport(sites=[], mode="hook", selector="class name 'bottleneck'")
        >>> report.params_added
        0
    """

    sites: List[InjectionSite]
    mode: str
    selector: str
    fallback_reason: Optional[str] = None
    skipped: List[Tuple[str, str]] = field(default_factory=list)

    @property
    def params_added(self) -> int:
        """Total parameters added by every site."""
        return sum(s.params for s in self.sites)

    def __str__(self) -> str:
        rows = [(s.site, s.site_class, s.position, str(s.channels), f"{s.attention} ({s.attention_class})",
                 str(s.params), s.attached + (" (B, H, W, C)" if s.channels_last else "")) for s in self.sites]
        header = ("site", "class", "position", "C", "attention", "params", "attached")
        widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
        right = {3, 5}  # numbers

        def line(cells) -> str:
            return "  " + "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

        lines = [f"InjectionReport(mode={self.mode!r}, selector={self.selector}, sites={len(self.sites)})", line(header)]
        lines += [line(r) for r in rows]
        lines += [f"  skipped {site}: {reason}" for site, reason in self.skipped]
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
