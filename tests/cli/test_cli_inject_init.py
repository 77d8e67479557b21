"""`plugattn inject ... --init identity`: the gate cost, and max |delta logits| at insertion for both modes."""
import re

import pytest

ARGS = ("inject", "resnet18", "se", "--branch", "basicblock", "--input-size", "3", "64", "64", "--repeats", "1")
DELTA = re.compile(r"^output at insertion \(init (\w+), eval, example input\): max \|delta logits\| = ([\d.e+-]+)", re.M)


def test_identity_init_reports_gates_and_an_exact_start(cli):
    status, out, err = cli(*ARGS, "--init", "identity")
    assert status == 0, err
    assert "init identity: 8 of 8 sites gated" in out
    assert "1,920 gate parameters (in the total)" in out  # 2 x (64 + 128 + 256 + 512) channels
    assert DELTA.search(out).groups() == ("identity", "0")
    assert "(the host's outputs exactly)" in out
    assert "layer1.0.se (SELayer)" in out
    assert "kernel backend: SELayer x8: torch" in out
    grads = re.search(r"attention parameter tensors with a finite nonzero gradient: (\d+)/(\d+)", out)
    assert grads.groups() == ("8", "40")  # the 8 gates; the SE layers behind them learn from step 1
    assert "init identity: before the first optimizer step only the gates" in out


def test_default_init_reports_the_damage(cli):
    status, out, err = cli(*ARGS)
    assert status == 0, err
    mode, delta = DELTA.search(out).groups()
    assert mode == "default" and float(delta) > 0.01
    assert "init identity" not in out


def test_unknown_init_is_a_usage_error(cli, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli(*ARGS, "--init", "identty")
    assert exit_info.value.code == 2
    assert "invalid choice: 'identty'" in capsys.readouterr().err
