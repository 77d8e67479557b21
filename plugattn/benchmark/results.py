"""The one benchmark result row: what every runner (SE / ECA / SimAM, window attention) yields."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from .timing import floor_gbps

# Keys of :meth:`Row.record`, in CSV order (the first thirteen are the table's, as before).
COLUMNS = (
    "op", "dtype", "shape", "pass", "eager_ms", "compile_ms", "plugattn_ms", "backend",
    "vs_eager", "vs_compile", "floor_GBps", "copy_GBps", "pct_of_copy", "sdpa_ms", "vs_sdpa", "backend_reason",
)


def _ratio(baseline_ms: Optional[float], ms: float) -> Optional[float]:
    return None if baseline_ms is None else baseline_ms / ms


@dataclass(frozen=True)
class Row:
    """One timed case: plugattn against eager PyTorch, ``torch.compile`` of it (``None`` when not
    timed) and, for window attention, SDPA; the backend plugattn ran and why; bandwidths.

    ``floor_GBps`` is the op's byte floor moved in the plugattn time; ``pct_of_copy`` compares it with
    a same-device copy measured in the same run.

    Example:
        >>> row = Row("simam", "fp32", (1, 4, 4, 4), "fwd", 2.0, None, 1.0, "torch", "cpu tensor", 512, 1.0)
        >>> row.vs_eager, row.vs_compile, row.record()["shape"]
        (2.0, None, '1x4x4x4')
    """

    op: str
    dtype: str
    shape: Tuple[int, ...]
    pass_name: str  # "fwd" or "fwd+bwd"
    eager_ms: float
    compile_ms: Optional[float]
    plugattn_ms: float
    backend: str  # "triton" or "torch"
    backend_reason: str  # plugattn.kernels.choose_backend's reason
    floor_bytes: float
    copy_GBps: float
    sdpa_ms: Optional[float] = None

    @property
    def vs_eager(self) -> float:
        return self.eager_ms / self.plugattn_ms

    @property
    def vs_compile(self) -> Optional[float]:
        return _ratio(self.compile_ms, self.plugattn_ms)

    @property
    def vs_sdpa(self) -> Optional[float]:
        return _ratio(self.sdpa_ms, self.plugattn_ms)

    @property
    def floor_GBps(self) -> float:
        return floor_gbps(self.floor_bytes, self.plugattn_ms)

    @property
    def pct_of_copy(self) -> float:
        return 100 * self.floor_GBps / self.copy_GBps

    @property
    def label(self) -> str:
        """``"eca fp32 2x16x8x8 fwd"``: what the row (a bar of the chart) stands for."""
        return f"{self.op} {self.dtype} {'x'.join(map(str, self.shape))} {self.pass_name}"

    def record(self) -> Dict[str, object]:
        """The row as a dict with the keys :data:`COLUMNS` (shape written ``NxCxHxW``), as the CSV holds it."""
        values = {"shape": "x".join(map(str, self.shape)), "pass": self.pass_name}
        return {key: values[key] if key in values else getattr(self, key) for key in COLUMNS}
