"""Setup and CI: what the README tells a new user to run is what CI runs, and the install brings
what the code imports.

* ``.ci/run`` runs the README's install and test commands verbatim, in a fresh virtual environment,
  and installs nothing else;
* every third-party package imported by the test suite is in ``setup.py``'s ``test`` extra (or the
  base install), and every one the package imports at module level is in the base install.
"""
from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path
from typing import Dict, List, Set

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
CI_RUN = (REPO / ".ci" / "run").read_text(encoding="utf-8")


def readme_commands(section: str) -> List[str]:
    """The lines of the first ```bash block under the README heading ``section``."""
    body = README.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", body, re.S)
    assert block, f"README section {section!r} has no bash block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def setup_requirements() -> Dict[str, List[str]]:
    """install_requires and extras_require, read from setup.py's setup(...) call without running it."""
    tree = ast.parse((REPO / "setup.py").read_text(encoding="utf-8"))
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "setup")
    keywords = {k.arg: k.value for k in call.keywords}
    extras = ast.literal_eval(keywords["extras_require"])
    return {"base": ast.literal_eval(keywords["install_requires"]), **extras}


def distribution_names(requirements: List[str]) -> Set[str]:
    return {re.split(r"[<>=!~;\[ ]", r, 1)[0].strip().lower().replace("_", "-") for r in requirements}


def third_party_imports(folder: str, module_level_only: bool = False) -> Dict[str, str]:
    """Top-level third-party modules imported by the .py files under ``folder`` -> one file importing it."""
    found: Dict[str, str] = {}
    for path in sorted((REPO / folder).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        nodes = tree.body if module_level_only else ast.walk(tree)
        for node in nodes:
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in ("plugattn", "tests", "bench"):
                    found.setdefault(top, str(path.relative_to(REPO)))
    return found


def providing_distribution(module: str) -> str:
    """The distribution that installs ``module`` (its own name when it is not installed here)."""
    return packages_distributions().get(module, [module])[0].lower().replace("_", "-")


def test_ci_runs_the_readme_commands_verbatim_in_a_fresh_venv():
    install, test = readme_commands("Tests")
    assert install == 'pip install -e ".[test]"' and test == "python -m pytest -n 2 -q"
    lines = [line.strip() for line in CI_RUN.splitlines()]
    assert lines.count(install) == 1 and lines.count(test) == 1
    assert lines.index(test) == max(i for i, line in enumerate(lines) if line and not line.startswith("#")), (
        "the test command is the last thing CI runs, so its exit status is CI's"
    )
    assert "set -euo pipefail" in lines
    assert "rm -rf .ci-venv" in lines and "python3 -m venv .ci-venv" in lines
    installs = [line for line in lines if re.search(r"\bpip\b.*\binstall\b", line) and not line.startswith("#")]
    assert installs == [install], f"CI installs something by hand: {installs}"


def test_quick_start_needs_only_the_base_install():
    (command,) = readme_commands("Quick start")
    assert command.startswith("pip install -e . && plugattn ")


def test_the_test_extra_brings_everything_the_suite_imports():
    requirements = setup_requirements()
    available = distribution_names(requirements["base"] + requirements["test"] + requirements["triton"])
    missing = {module: path for module, path in third_party_imports("tests").items()
               if providing_distribution(module) not in available}
    assert not missing, f"imported by the tests but not in setup.py's test extra: {missing}"
    for plugin in ("pytest-xdist", "pytest-benchmark"):  # used through pytest, never imported
        assert plugin in distribution_names(requirements["test"])


def test_the_base_install_brings_what_the_package_imports_at_module_level():
    base = distribution_names(setup_requirements()["base"])
    assert "numpy" in base  # torch warns without it, Triton's interpreter cannot import without it
    missing = {module: path for module, path in third_party_imports("plugattn", module_level_only=True).items()
               if providing_distribution(module) not in base}
    assert not missing, f"imported at module level by plugattn but not in install_requires: {missing}"
