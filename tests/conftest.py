"""Test-wide setup. Without a GPU, Triton kernels run in Triton's CPU interpreter; that switch must
be set before triton is first imported, so it happens here, before any test module loads."""
import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

torch.manual_seed(0)

# CI runs pytest with two xdist workers on two cores: one intra-op thread per worker avoids
# oversubscription (gradcheck's many tiny ops slow down several-fold when threads fight).
torch.set_num_threads(1)


import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed_every_test():
    """Each test draws the same random numbers whatever order (or xdist worker) it runs in."""
    torch.manual_seed(0)
