"""Helpers for the command-line tests: run ``python -m plugattn`` in a subprocess; check user errors."""
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, Optional, Sequence



def run_cli(args: Sequence[str], cwd: Path, extra_pythonpath: Optional[Path] = None) -> subprocess.CompletedProcess:
    """``python -m plugattn ARGS`` from ``cwd`` (not the repo root: the installed package must work anywhere).

    No timeout: how long a command takes depends on the machine's load, and a test must not."""
    env: Dict[str, str] = dict(os.environ)
    env["OMP_NUM_THREADS"] = "1"  # two xdist workers share two cores
    if extra_pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(extra_pythonpath), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return subprocess.run([sys.executable, "-m", "plugattn", *args], cwd=cwd, env=env,
                          capture_output=True, text=True)


def assert_user_error(returncode: int, stderr: str, *expected: str) -> str:
    """A user error: status 2, exactly one stderr line starting with 'error:', no traceback."""
    assert returncode == 2, stderr
    lines = stderr.strip().splitlines()
    assert "Traceback" not in stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]
