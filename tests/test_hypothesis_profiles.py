"""tests/conftest.py picks the hypothesis profile: derandomized under CI=true, random elsewhere, and
both print how to reproduce a failing example."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import settings

REPO = Path(__file__).resolve().parents[1]


def test_the_loaded_profile_prints_the_reproduction_blob():
    assert settings.default.print_blob is True


@pytest.mark.parametrize("ci,derandomized", [("true", True), ("", False)])
def test_ci_chooses_the_derandomized_profile(ci, derandomized):
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "HYPOTHESIS_PROFILE")}
    if ci:
        env["CI"] = ci
    code = "import tests.conftest; from hypothesis import settings; print(settings.default.derandomize)"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(derandomized)
