"""`plugattn list`: attention modules with their parameters at 64 channels, backbones with totals."""
from .cli_helpers import assert_user_error, run_cli


def _row(output: str, name: str) -> list:
    rows = [line.split() for line in output.splitlines() if line.split()[:1] == [name]]
    assert len(rows) == 1, f"no single row named {name!r} in:\n{output}"
    return rows[0]


def test_list_attention_end_to_end(tmp_path):
    result = run_cli(["list", "attention"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    header = result.stdout.splitlines()[0].split()
    assert header == ["name", "class", "paper", "params@64"]
    # SE at 64 channels, reduction 16 -> hidden 4: fc1 64*4 + 4, fc2 4*64 + 64 (Hu et al., Sec. 3).
    se = _row(result.stdout, "se")
    assert se[1] == "SELayer" and se[-1] == str(64 * 4 + 4 + 4 * 64 + 64)
    # ECA at 64 channels: k = |log2(64)/2 + 1/2|_odd = 3 taps, no bias (Wang et al., Eq. 12).
    eca = _row(result.stdout, "eca")
    assert eca[1] == "ECALayer" and eca[-1] == "3" and "CVPR" in " ".join(eca)
    simam = _row(result.stdout, "simam")
    assert simam[1] == "SimAM" and simam[-1] == "0"


def test_list_backbones_by_family(cli):
    status, out, _ = cli("list", "backbones", "--family", "cnn")
    assert status == 0
    assert out.splitlines()[0].split() == ["name", "family", "class", "paper", "params", "gmacs"]
    resnet50 = _row(out, "resnet50")
    # torchvision: 25,557,032 parameters, 4.09 GFLOPS (multiply-adds) at 224
    assert resnet50[1:3] == ["cnn", "ResNet"] and resnet50[-3:] == ["25.56M", "4.09", "@224"]
    assert all(line.split()[1] == "cnn" for line in out.splitlines()[2:])
    assert "vit_tiny_patch16_224" not in out and "swin_tiny" not in out


def test_family_applies_to_backbones_only(cli):
    status, _, err = cli("list", "attention", "--family", "cnn")
    assert_user_error(status, err, "--family applies to 'plugattn list backbones'")


def test_list_backbones_reads_the_precomputed_table(cli, monkeypatch):
    # no model is built: the figures come from plugattn.backbones.measured
    from plugattn.backbones import registry

    def refuse(*args, **kwargs):
        raise AssertionError("plugattn list backbones built a model")

    monkeypatch.setattr(registry, "create_backbone", refuse)
    status, out, _ = cli("list", "backbones", "--family", "mlp")
    assert status == 0
    gfnet = _row(out, "gfnet_ti")
    assert gfnet[-3:] == ["7.51M", "1.28", "@224"]  # GFNet-Ti: 7.5M, 1.3 GFLOPs with the FFTs counted
