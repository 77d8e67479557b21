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
import types
from pathlib import Path

import pytest
import torch

from plugattn import kernels
from plugattn.kernels import dispatch

REPO = Path(__file__).resolve().parents[2]
# what choose_backend reads of a CUDA tensor, for deciding 'auto' on a machine without a GPU
FAKE_CUDA = types.SimpleNamespace(is_cuda=True, dtype=torch.float32, device=torch.device("cuda"))

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
    # "auto" takes the PyTorch reference and says why
    assert dispatch.choose_backend("eca", FAKE_CUDA, "auto").reason.startswith(
        "triton not importable: triton 3.8.0 is installed but cannot be imported")


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


# --------------------------------------------------------------------------- choose_backend: one answer, with why
@pytest.fixture
def default_backend(monkeypatch: pytest.MonkeyPatch):
    """Restore the process default after the test (it may set it, or re-read PLUGATTN_BACKEND)."""
    monkeypatch.setattr(dispatch, "_default_backend", dispatch._default_backend)
    monkeypatch.setattr(dispatch, "_default_origin", dispatch._default_origin)


def test_auto_on_cpu_runs_torch_because_cpu_tensor():
    assert kernels.choose_backend("simam", torch.randn(1, 2, 3, 3), "auto") == kernels.BackendChoice("torch", "cpu tensor")


def test_auto_on_cuda_runs_triton_where_it_can(fresh_check, monkeypatch):
    monkeypatch.setattr(dispatch, "_why_triton_cannot_run", lambda interpreter: None)
    assert str(dispatch.choose_backend("eca", FAKE_CUDA, "auto")) == "triton (cuda tensor and triton importable)"
    float64 = types.SimpleNamespace(is_cuda=True, dtype=torch.float64, device=torch.device("cuda"))
    assert dispatch.choose_backend("eca", float64, "auto").reason == "dtype float64 is not one of float32, float16, bfloat16"


def test_window_limits_are_part_of_the_choice(fresh_check, monkeypatch):
    monkeypatch.setattr(dispatch, "_why_triton_cannot_run", lambda interpreter: None)
    choice = dispatch.choose_backend("window_attention", FAKE_CUDA, "auto", window_size=14, head_dim=32)
    assert choice == dispatch.BackendChoice("torch", "outside the Triton kernel's limits: window_size 14 > 12")
    assert dispatch.choose_backend("window_attention", FAKE_CUDA, "auto", window_size=12, head_dim=32).backend == "triton"
    with pytest.raises(RuntimeError, match=r"window_attention: backend='triton' does not support window_size 14 > 12"):
        dispatch.choose_backend("window_attention", FAKE_CUDA, "triton", window_size=14, head_dim=32)
    with pytest.raises(ValueError, match=r"op 'eca' has no kernel limits to check window_size"):
        dispatch.choose_backend("eca", FAKE_CUDA, "auto", window_size=7)


def test_the_reason_names_how_the_backend_was_requested(default_backend, monkeypatch):
    x = torch.randn(2)
    assert dispatch.choose_backend("se", x, "torch").reason == "backend='torch'"
    monkeypatch.setenv("PLUGATTN_BACKEND", "torch")
    monkeypatch.setattr(dispatch, "_default_backend", None)  # read the environment again
    assert dispatch.choose_backend("se", x) == dispatch.BackendChoice("torch", "PLUGATTN_BACKEND=torch")
    with dispatch.use_backend("auto"):
        assert dispatch.choose_backend("se", x).reason == "cpu tensor"
        with dispatch.use_backend("torch"):
            assert dispatch.choose_backend("se", x).reason == "use_backend('torch')"
    assert dispatch.choose_backend("se", x).reason == "PLUGATTN_BACKEND=torch"  # restored with its origin
    dispatch.set_backend("torch")
    assert dispatch.choose_backend("se", x).reason == "set_backend('torch')"


@pytest.mark.triton
def test_forced_triton_on_cpu_names_the_interpreter():
    if not dispatch.interpreter_enabled():
        pytest.skip("needs TRITON_INTERPRET=1")
    choice = dispatch.choose_backend("simam", torch.randn(1, 2, 3, 3), "triton")
    assert choice == dispatch.BackendChoice("triton", "backend='triton', cpu tensor in Triton's interpreter (TRITON_INTERPRET=1)")


def test_module_backend_uses_the_same_answer(fresh_check, monkeypatch):
    from plugattn.attention import CBAM, SimAM, WindowAttention2d

    assert kernels.module_backend(SimAM(4), torch.randn(1, 4, 3, 3)) == kernels.BackendChoice("torch", "cpu tensor")
    assert str(kernels.module_backend(CBAM(16), torch.randn(1, 16, 3, 3))) == "torch (no kernel)"
    monkeypatch.setattr(dispatch, "_why_triton_cannot_run", lambda interpreter: None)
    wide = WindowAttention2d(64, num_heads=2, window_size=14)
    assert kernels.module_backend(wide, FAKE_CUDA).reason == "outside the Triton kernel's limits: window_size 14 > 12"
    assert kernels.module_backend(WindowAttention2d(64, num_heads=2), FAKE_CUDA).backend == "triton"
