"""`plugattn inject`: the sites, totals, path, forward/backward report, timing and the --save round trip."""
import re

import pytest
import torch

from .cli_helpers import run_cli
from plugattn.attention.eca import eca_kernel_size
from plugattn.cli.inject_cmd import build_injected

RESNET18_STAGE_CHANNELS = [64, 64, 128, 128, 256, 256, 512, 512]  # two BasicBlocks per stage
RESNET50_BLOCK_CHANNELS = [256] * 3 + [512] * 4 + [1024] * 6 + [2048] * 3  # Bottleneck outputs


def test_inject_resnet18_eca_end_to_end_and_save_round_trip(tmp_path):
    saved = tmp_path / "resnet18_eca.pt"
    result = run_cli(["inject", "resnet18", "eca", "--after", "basicblock", "--input-size", "3", "64", "64",
                      "--repeats", "2", "--save", str(saved)], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Traceback" not in result.stderr
    assert "path: forward hooks at module boundaries" in out
    assert "forward hook on layer1.0" in out

    site_rows = [line.split() for line in out.splitlines() if re.match(r"layer\d\.\d\s", line)]
    assert [row[0] for row in site_rows] == [f"layer{s}.{b}" for s in range(1, 5) for b in range(2)]
    assert all(row[1] == "after" and row[3] == "BasicBlock" for row in site_rows)
    assert [int(row[2]) for row in site_rows] == RESNET18_STAGE_CHANNELS
    # ECA adds one k-tap conv1d per site, k from the channel count (Wang et al., Eq. 12), no bias.
    added = [eca_kernel_size(c) for c in RESNET18_STAGE_CHANNELS]
    assert [int(row[-1]) for row in site_rows] == added

    params = re.search(r"^parameters\s+([\d,]+)\s+([\d,]+)\s+\+([\d,]+)", out, re.M)
    assert params, out
    before, after, delta = (int(g.replace(",", "")) for g in params.groups())
    assert before == 11_689_512  # torchvision resnet18
    assert after - before == delta == sum(added)
    macs = re.search(r"^multiply-adds\s+([\d.]+) GMACs\s+([\d.]+) GMACs\s+\+([\d,]+) MACs", out, re.M)
    assert macs, out
    # FlopCounterMode sees each ECA conv1d: C outputs x k taps per image.
    assert int(macs.group(3).replace(",", "")) == sum(c * k for c, k in zip(RESNET18_STAGE_CHANNELS, added))
    assert 0.14 < float(macs.group(1)) < 0.16  # 1.82 GMACs at 224 scale by (64/224)^2 -> 0.149
    assert "FlopCounterMode" in out

    assert "output shape: (1, 1000)" in out
    assert "attention parameter tensors with a finite nonzero gradient: 8/8" in out
    assert "kernel backend: ECALayer x8: torch" in out
    timing = re.search(r"forward time \(inference, median of 2, timed in turns\): ([\d.]+) ms before, ([\d.]+) ms after, ratio x([\d.]+)", out)
    assert timing, out
    assert float(timing.group(3)) == pytest.approx(float(timing.group(2)) / float(timing.group(1)), rel=0.02)

    # --save round trip: the file loads (strictly) into a freshly injected model built from another
    # seed, which then computes what the CLI's seed-0 model computes.
    state = torch.load(saved, map_location="cpu")
    reference = build_injected("resnet18", "eca", "basicblock", input_size=(3, 64, 64), seed=0)
    fresh = build_injected("resnet18", "eca", "basicblock", input_size=(3, 64, 64), seed=1)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert not torch.equal(fresh.model(x), reference.model(x))
        fresh.model.load_state_dict(state)
        assert torch.equal(fresh.model(x), reference.model(x))
    assert any(key.endswith("eca.conv.weight") for key in state)


def test_inject_branch_spelling_se_on_resnet50(cli):
    status, out, err = cli("inject", "resnet50", "se", "--branch", "bottleneck", "--input-size", "3", "64", "64",
                           "--repeats", "1")
    assert status == 0, err
    site_rows = [line.split() for line in out.splitlines() if re.match(r"layer\d\.\d\s", line)]
    assert len(site_rows) == 16 and all(row[1] == "branch" and row[3] == "Bottleneck" for row in site_rows)
    assert [int(row[2]) for row in site_rows] == RESNET50_BLOCK_CHANNELS
    # SE with reduction 16: fc1 C*(C/16) + C/16, fc2 (C/16)*C + C (Hu et al., Sec. 3.2).
    expected = sum(2 * c * (c // 16) + c // 16 + c for c in RESNET50_BLOCK_CHANNELS)
    params = re.search(r"^parameters\s+([\d,]+)\s+([\d,]+)\s+\+([\d,]+)", out, re.M)
    assert int(params.group(3).replace(",", "")) == expected
    assert int(params.group(1).replace(",", "")) == 25_557_032  # torchvision resnet50
    assert "kernel backend: SELayer x16: torch" in out
    assert "attention parameter tensors with a finite nonzero gradient: 64/64" in out


def test_inject_module_without_kernel_and_where_option(cli):
    status, out, err = cli("inject", "resnet18", "cbam", "--after", "basicblock", "--where", "before",
                           "--input-size", "3", "64", "64", "--repeats", "1")
    assert status == 0, err
    site_rows = [line.split() for line in out.splitlines() if re.match(r"layer\d\.\d\s", line)]
    assert len(site_rows) == 8 and all(row[1] == "before" for row in site_rows)
    # "before" sees each block's input: the stem's 64 channels, then the previous block's output.
    assert [int(row[2]) for row in site_rows] == [64, 64, 64, 128, 128, 256, 256, 512]
    assert "kernel backend: CBAM x8: torch (no kernel)" in out
