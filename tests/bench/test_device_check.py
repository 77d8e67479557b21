"""``python -m bench.device_check OUT_DIR --smoke``: the GPU device check's own logic, on CPU, tiny."""
from __future__ import annotations

import csv

import pytest

from bench import device_check


@pytest.mark.slow
def test_smoke_run_writes_one_table_and_one_csv(tmp_path):
    rows = device_check.main([str(tmp_path), "--smoke"])
    steps = {str(row["step"]).split()[0] for row in rows}
    assert {"kernel", "simam", "eca", "se", "window", "ResNet-50+ECA"} <= steps, steps
    assert not [row for row in rows if str(row["measured"]).startswith("error")], rows
    assert next(row for row in rows if row["step"] == "kernel tests")["met"] == "yes"
    markdown = (tmp_path / "device_check.md").read_text()
    assert markdown.count("\n| ") == len(rows) + 1 and "no GPU numbers" in markdown.splitlines()[0]
    with open(tmp_path / "device_check.csv", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == len(rows)


def test_without_a_gpu_it_says_to_use_smoke(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(device_check.torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit):
        device_check.main([str(tmp_path)])
    assert "--smoke" in capsys.readouterr().err
