"""The README's first example runs exactly as written there, with only the base install (``pip install
-e .``), and prints exactly the report shown under it; torchvision's ResNet-50 gives the same report."""
import ast
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def first_example() -> tuple:
    """(code, shown output) of the README's first ```python block and the ``` block after it."""
    match = re.search(r"```python\n(.*?)```\n```\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert match, "README.md has no python example followed by its output"
    return match.group(1), match.group(2)


def test_readme_first_example_runs_as_written_and_prints_what_is_shown(capsys):
    code, shown = first_example()
    assert code.startswith("# pip install -e .\n")
    imported = {node.module or "" for node in ast.walk(ast.parse(code)) if isinstance(node, ast.ImportFrom)}
    imported |= {a.name for node in ast.walk(ast.parse(code)) if isinstance(node, ast.Import) for a in node.names}
    assert {name.split(".")[0] for name in imported} <= {"plugattn", "torch"}, "the base install must suffice"
    namespace = {}
    exec(compile(code, str(README), "exec"), namespace)
    assert capsys.readouterr().out == shown
    report = namespace["model"].injection_report
    assert len(report.sites) == 16 and report.params_added == 86 and report.mode == "hook"
    assert report.sites[0].shape == (1, 256, 56, 56)  # the default input is 1x3x224x224
    assert type(namespace["original"]).__name__ == type(namespace["model"]).__name__ == "ResNet"


def test_torchvision_resnet50_gives_the_same_report():
    torchvision = pytest.importorskip("torchvision")
    from plugattn import inject_attention

    _, shown = first_example()
    model = inject_attention(torchvision.models.resnet50(), "eca", after="bottleneck")
    assert str(model.injection_report) + "\n" == shown
