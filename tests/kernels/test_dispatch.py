"""Backend dispatch (plugattn/kernels/dispatch.py): whether Triton can run, and why not.

When triton is installed but cannot run (here: its interpreter cannot import numpy), the check names
that cause, ``backend='triton'`` errors repeat it, and every test that needs Triton is skipped with it:
none fails and none crashes at collection.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from plugattn import kernels
from plugattn.kernels import dispatch

REPO = Path(__file__).resolve().parents[2]

# Makes numpy look not installed: the path finder reports no spec for it, as on a machine without it.
HIDE_NUMPY = textwrap.dedent(
    """
    import sys
    from importlib.machinery import PathFinder

    class _PathFinderWithoutNumpy(PathFinder):
        @classmethod
        def find_spec(cls, name, path=None, target=None):
            if name == "numpy" or name.startswith("numpy."):
                return None
            return PathFinder.find_spec(name, path, target)

    sys.meta_path[:] = [_PathFinderWithoutNumpy if f is PathFinder else f for f in sys.meta_path]
    """
)


@pytest.fixture
def fresh_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget the cached answer, so the check runs again under the test's conditions."""
    monkeypatch.setattr(dispatch, "_triton_unavailable", {})


def test_triton_not_installed(fresh_check, monkeypatch):
    monkeypatch.setitem(sys.modules, "triton", None)  # ``import triton`` raises ModuleNotFoundError
    monkeypatch.setattr(dispatch, "_installed_triton_version", lambda: None)
    assert dispatch.triton_unavailable_reason() == "triton is not installed (pip install 'plugattn[triton]')"
    assert dispatch.triton_available() is False


def test_triton_installed_but_broken(fresh_check, monkeypatch):
    monkeypatch.setitem(sys.modules, "triton", None)
    monkeypatch.setattr(dispatch, "_installed_triton_version", lambda: "3.8.0")
    reason = dispatch.triton_unavailable_reason()
    assert reason.startswith("triton 3.8.0 is installed but cannot be imported")
    assert "ModuleNotFoundError" in reason
    with pytest.raises(RuntimeError, match=r"eca: backend='triton' but triton 3\.8\.0 is installed but cannot be"):
        kernels.eca(torch.randn(1, 4, 3, 3), torch.randn(1, 1, 3), backend="triton")
    # "auto" quietly takes the PyTorch reference
    assert dispatch.resolve_backend(torch.randn(2), "auto") == "torch"


def test_triton_without_numpy_skips_with_the_cause(tmp_path):
    """A real interpreter without numpy: the reason names it, and the Triton tests skip with it."""
    (tmp_path / "sitecustomize.py").write_text(HIDE_NUMPY)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO)]), TRITON_INTERPRET="1",
               PYTHONDONTWRITEBYTECODE="1")
    env.pop("PYTEST_XDIST_WORKER", None)
    pytest.importorskip("triton")
    check = subprocess.run(
        [sys.executable, "-W", "ignore", "-c",
         "from plugattn.kernels.dispatch import triton_unavailable_reason as r; print(r())"],
        env=env, capture_output=True, text=True, cwd=REPO,
    )
    assert check.returncode == 0, check.stderr
    reason = check.stdout.strip()
    assert "is installed but cannot be imported with its interpreter switched on (TRITON_INTERPRET=1)" in reason
    assert "No module named 'numpy'" in reason
    # every kernel test file collects; those needing Triton skip with that reason (none fails)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "-m", "triton", "-rs",
         "tests/kernels/test_eca.py", "tests/kernels/test_se.py", "tests/kernels/test_simam.py",
         "tests/kernels/test_window_attention.py", "tests/kernels/test_gpu_compile.py"],
        env=env, capture_output=True, text=True, cwd=REPO,
    )
    summary = run.stdout.strip().splitlines()[-1]
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "skipped" in summary and "passed" not in summary and "failed" not in summary, summary
    assert "error" not in summary, summary
    assert f"needs Triton: {reason}" in run.stdout
