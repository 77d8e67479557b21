"""Test-wide setup. Without a GPU, Triton kernels run in Triton's CPU interpreter; that switch must
be set before triton is first imported, so it happens here, before any test module loads.

* Tests marked ``@pytest.mark.triton`` need Triton to run; where it cannot, they are skipped with
  the real cause (``plugattn.kernels.dispatch.triton_unavailable_reason``), e.g. triton installed
  but its interpreter failing to import numpy.
* Hypothesis: the ``ci`` profile (chosen when ``CI`` is ``true``/``1``) is derandomized, so CI runs
  the same examples every time; the ``dev`` profile (elsewhere) draws new examples on every run.
  Both print the ``@reproduce_failure`` blob of a failing example. ``HYPOTHESIS_PROFILE`` overrides
  the choice; ``--hypothesis-seed=K`` replays a given seed.
"""
import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

torch.manual_seed(0)

# CI runs pytest with two xdist workers on two cores: one intra-op thread per worker avoids
# oversubscription (gradcheck's many tiny ops slow down several-fold when threads fight).
torch.set_num_threads(1)


import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

settings.register_profile("ci", derandomize=True, print_blob=True, database=None)
settings.register_profile("dev", print_blob=True)


def _running_in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if _running_in_ci() else "dev"))


def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    """Skip ``@pytest.mark.triton`` tests, naming the cause, where Triton cannot run."""
    from plugattn.kernels.dispatch import triton_unavailable_reason

    reason = triton_unavailable_reason()
    if reason is None:
        return
    skip = pytest.mark.skip(reason=f"needs Triton: {reason}")
    for item in items:
        if item.get_closest_marker("triton") is not None:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed_every_test():
    """Each test draws the same random numbers whatever order (or xdist worker) it runs in."""
    torch.manual_seed(0)
