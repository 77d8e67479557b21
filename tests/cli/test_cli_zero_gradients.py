"""`plugattn inject` explains zero attention gradients when the host causes them: timm zero-initialises
the last norm of each residual branch (zero_init_last), so SE on that branch gets an input of exactly 0."""
import pytest


def test_zero_gradients_on_a_zero_initialised_branch_are_explained(cli):
    pytest.importorskip("timm")
    status, out, err = cli("inject", "timm:resnet18", "se", "--branch", "basicblock",
                           "--input-size", "3", "64", "64", "--repeats", "1")
    assert status == 0, err
    assert "attention parameter tensors with a finite nonzero gradient: 0/32" in out
    text = " ".join(out.split())
    assert "(zero at 8 of 8 sites because their input is exactly 0: the model zero-initialises the last norm" in text
    assert "(layer1.0.bn2, layer1.1.bn2, ...: weight = 0)" in text
    assert "not a fault" in text


def test_no_explanation_when_gradients_flow(cli):
    status, out, err = cli("inject", "resnet18", "se", "--after", "basicblock",
                           "--input-size", "3", "64", "64", "--repeats", "1")
    assert status == 0, err
    assert "attention parameter tensors with a finite nonzero gradient: 32/32" in out
    assert "zero at" not in out
