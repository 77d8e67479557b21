"""User errors: one `error:` line on stderr with a fix, exit status 2, never a traceback."""
import sys

import pytest
import torch

from .cli_helpers import assert_user_error, run_cli

INJECT_TAIL = ("--input-size", "3", "64", "64", "--repeats", "1")


def test_unknown_attention_end_to_end(tmp_path):
    result = run_cli(["inject", "resnet18", "ecaa", "--after", "basicblock"], cwd=tmp_path)
    line = assert_user_error(result.returncode, result.stderr, "unknown attention 'ecaa'", "did you mean 'eca'",
                             "plugattn list attention")
    assert result.stdout == ""
    assert line.count("'") < 20  # the close matches, not the whole registry


def test_missing_timm_end_to_end(tmp_path):
    """A PYTHONPATH folder whose ``timm.py`` raises ImportError stands in for an environment without timm."""
    blocker = tmp_path / "blocked"
    blocker.mkdir()
    (blocker / "timm.py").write_text("raise ImportError('No module named timm')\n")
    result = run_cli(["inject", "timm:resnet18", "eca", "--after", "basicblock"], cwd=tmp_path,
                     extra_pythonpath=blocker)
    assert_user_error(result.returncode, result.stderr, "timm is not installed", "pip install timm")


def test_missing_torchvision(cli, monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # makes `import torchvision` raise ImportError
    status, out, err = cli("inject", "torchvision:resnet18", "eca", "--after", "basicblock", *INJECT_TAIL)
    assert_user_error(status, err, "torchvision is not installed", "pip install torchvision")
    assert out == ""


def test_unknown_model_names_close_matches(cli):
    status, _, err = cli("inject", "resnet5", "eca", "--after", "bottleneck", *INJECT_TAIL)
    assert_user_error(status, err, "unknown plugattn backbone 'resnet5'", "'resnet50'", "plugattn list backbones")


@pytest.mark.parametrize("spec, kind", [("torchvision:resnet5", "torchvision model"), ("timm:resnet5x", "timm model")])
def test_unknown_external_model(cli, spec, kind):
    status, _, err = cli("inject", spec, "eca", "--after", "bottleneck", *INJECT_TAIL)
    line = assert_user_error(status, err, f"unknown {kind}", "did you mean 'resnet50'", "list_models()")
    assert len(line) < 400  # timm has over a thousand models: only the closest are named


def test_unknown_model_source(cli):
    status, _, err = cli("inject", "keras:resnet50", "eca", "--after", "bottleneck", *INJECT_TAIL)
    assert_user_error(status, err, "model source must be 'torchvision:' or 'timm:'", "'keras'")


def test_selector_matching_nothing_lists_the_block_classes(cli):
    status, out, err = cli("inject", "resnet18", "eca", "--after", "bottleneck", *INJECT_TAIL)
    line = assert_user_error(status, err, "selector class name 'bottleneck' matches no module of ResNet")
    assert "BasicBlock (x8)" in line
    assert out == ""


def test_where_contradicting_the_spelling(cli):
    status, _, err = cli("inject", "resnet18", "eca", "--before", "basicblock", "--where", "branch", *INJECT_TAIL)
    assert_user_error(status, err, "--where branch contradicts --before", "--branch SELECTOR")


def test_bad_input_size(cli):
    status, _, err = cli("inject", "resnet18", "eca", "--after", "basicblock", "--input-size", "3", "0", "64")
    assert_user_error(status, err, "--input-size takes three positive numbers", "3 0 64")


def test_selector_is_required(cli):
    with pytest.raises(SystemExit) as exit_info:  # argparse's own usage error, also status 2
        cli("inject", "resnet18", "eca")
    assert exit_info.value.code == 2


@pytest.mark.parametrize("shape", ["2x16x8", "2x16xeightx8", "0x16x8x8"])
def test_bench_bad_shape(cli, tmp_path, shape):
    status, _, err = cli("bench", "--op", "eca", "--device", "cpu", "--shapes", shape, "--out", str(tmp_path))
    assert_user_error(status, err, "--shapes", "NxCxHxW", repr(shape))


@pytest.mark.skipif(torch.cuda.is_available(), reason="the error is for machines without a GPU")
@pytest.mark.parametrize("command", [["bench", "--device", "cuda"], ["inject", "resnet18", "eca", "--after", "basicblock",
                                                                      "--device", "cuda"]])
def test_cuda_without_gpu(cli, tmp_path, command):
    status, _, err = cli(*command)
    assert_user_error(status, err, "no GPU is visible", "--device cpu")


def test_input_size_the_model_cannot_take(cli):
    status, out, err = cli("inject", "resnet18", "eca", "--after", "basicblock", "--input-size", "1", "64", "64")
    assert_user_error(status, err, "resnet18 cannot run on a 1×1×64×64 input", "ResNet expects a (B, 3, H, W) batch",
                      "got 1 channels", "check --input-size")
    assert out == ""


def test_training_pass_failure_suggests_a_fix(cli):
    # ResNet-18 at 8×8: layer4 is 1×1, and BatchNorm cannot normalise one value per channel in training.
    status, _, err = cli("inject", "resnet18", "eca", "--after", "basicblock", "--input-size", "3", "8", "8", "--repeats", "1")
    assert_user_error(status, err, "training-mode forward + backward on a 1×3×8×8 input failed",
                      "--batch-size 2")


def test_save_into_a_missing_folder(cli, tmp_path):
    target = tmp_path / "missing" / "model.pt"
    status, out, err = cli("inject", "resnet18", "eca", "--after", "basicblock", *INJECT_TAIL, "--save", str(target))
    assert_user_error(status, err, "does not exist; create it first")
    assert out == "" and not target.exists()
