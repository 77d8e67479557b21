"""examples/finetune_with_attention.py runs (a smaller setting): the identity start equals the checkpoint."""
import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("torchvision")
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "finetune_with_attention.py"


def load_example():
    spec = importlib.util.spec_from_file_location("finetune_with_attention", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_finetune_example_small(tmp_path, capsys):
    example = load_example()
    checkpoint = tmp_path / "trained.pt"
    result = example.main(["--image-size", "16", "--train-size", "64", "--test-size", "32", "--batch-size", "16",
                           "--train-steps", "4", "--finetune-steps", "4", "--checkpoint", str(checkpoint)])
    out = capsys.readouterr().out
    assert checkpoint.is_file()
    assert result["identity_start"] == result["trained"]  # the script asserts it too
    assert result["default_start"] != result["trained"]
    assert result["gate_params"] == 64 + 128 + 256 + 512  # one BasicBlock per stage, C gates each
    assert [step for step, *_ in result["curve"]] == [1, 2, 3, 4]
    assert "init='identity': step 0 test loss" in out and "fine-tuning:" in out
