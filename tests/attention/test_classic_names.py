"""Switching from the classic pytorch-attention collection: every row of the README's table
"classic import -> plugattn import" runs (the plugattn import, then the classic example call on a
(2, 64, 32, 32) map), so the table and the package cannot drift apart."""
import re
from pathlib import Path

import pytest
import torch

import plugattn

README = Path(__file__).resolve().parents[2] / "README.md"


def switch_table() -> list:
    """(module, classic import, plugattn import, classic call) for each row of the README's table."""
    text = README.read_text(encoding="utf-8")
    section = text.split("### Switching from the classic `pytorch-attention` collection\n", 1)[1].split("\n#", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[2].startswith("`from plugattn import"):
            rows.append(tuple(c.strip("`") for c in cells))
    return rows


ROWS = switch_table()


def test_the_table_covers_all_15_modules():
    assert len(ROWS) == 15
    names = {re.search(r"import (\w+)", plugattn_import).group(1) for _, _, plugattn_import, _ in ROWS}
    classes = {getattr(plugattn, name) for name in names}
    zoo = {getattr(plugattn.attention, n) for n in plugattn.attention.__all__}
    zoo = {obj for obj in zoo if isinstance(obj, type) and issubclass(obj, torch.nn.Module)}
    assert len(zoo) == 15 and classes == zoo


@pytest.mark.parametrize("module,classic,ours,call", ROWS, ids=[row[0] for row in ROWS])
def test_every_row_runs(module, classic, ours, call):
    namespace = {}
    exec(ours, namespace)
    attention = eval(call, namespace)
    x = torch.randn(2, 64, 32, 32)
    assert attention(x).shape == x.shape
    classic_name = classic.rsplit(" ", 1)[-1] if classic.startswith("from ") else None
    our_name = ours.rsplit(" ", 1)[-1]
    if classic_name is not None and module != "Gaussian context transformer":
        assert our_name == classic_name, "the classic name itself must import"


def test_classic_aliases():
    from plugattn import CoordinateAttention, simam_module

    assert CoordinateAttention is plugattn.CoordAtt and simam_module is plugattn.SimAM
    assert isinstance(plugattn.create_attention("coordinate_attention", 16), plugattn.CoordAtt)
    assert isinstance(plugattn.create_attention("simam_module", 16), plugattn.SimAM)


def test_the_classic_gct_of_gct_py_is_the_gaussian_context_transformer_here():
    (row,) = [r for r in ROWS if r[1] == "from attention_mechanisms.gct import GCT"]
    assert row[2] == "from plugattn import GaussianContextTransformer"
    assert "Gaussian context transformer" in README.read_text(encoding="utf-8")
    assert plugattn.GCT.__name__ == "GCT" and plugattn.GCT is not plugattn.GaussianContextTransformer
