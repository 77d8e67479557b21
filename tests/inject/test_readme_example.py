"""The README's first example runs exactly as written there (default 1x3x224x224 example input)."""
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def first_python_block() -> str:
    match = re.search(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert match, "README.md has no python example"
    return match.group(1)


def test_readme_first_example_is_the_injection_and_runs_as_written(capsys):
    pytest.importorskip("torchvision")
    code = first_python_block()
    assert 'inject_attention(resnet50(), "eca", after="bottleneck")' in code
    namespace = {}
    exec(compile(code, str(README), "exec"), namespace)
    report = namespace["model"].injection_report
    assert len(report.sites) == 16 and report.params_added == 86 and report.mode == "hook"
    assert report.sites[0].shape == (1, 256, 56, 56)  # the default input is 1x3x224x224
    assert "total parameters added: 86" in capsys.readouterr().out

    from plugattn import remove_attention

    assert type(namespace["model"]).__name__ == type(remove_attention(namespace["model"])).__name__ == "ResNet"
