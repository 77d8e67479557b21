"""Registry names, parameter names, shapes and counts of every backbone stay exactly as recorded.

``data/backbone_snapshot.json`` was written from the flat layout before the backbones moved into
``cnn/``, ``vit/``, ``mlp/`` and ``layers/``: for each registered name its family, parameter count,
number of state-dict entries and the SHA-256 of its ``key:shape`` lines in state-dict order. Moving or
folding code must leave all four unchanged, so external weights and users' checkpoints still load.
Regenerate (only for a deliberate model change, saying why in the commit) with
``python tests/backbones/test_snapshot.py``.
"""
import hashlib
import json
import pathlib
import sys

import pytest
import torch

from plugattn.backbones import BACKBONES, create_backbone, list_backbones
from plugattn.parameters import count_parameters

SNAPSHOT_PATH = pathlib.Path(__file__).parent / "data" / "backbone_snapshot.json"
SNAPSHOT = json.loads(SNAPSHOT_PATH.read_text())


def describe(name: str) -> dict:
    """What the snapshot records of one backbone, measured on the meta device."""
    with torch.device("meta"):
        model = create_backbone(name)
    state = model.state_dict()
    lines = "\n".join(f"{key}:{tuple(value.shape)}" for key, value in state.items())
    return {
        "family": BACKBONES.get(name).info["family"],
        "parameters": count_parameters(model),
        "state_dict_entries": len(state),
        "state_dict_sha256": hashlib.sha256(lines.encode()).hexdigest(),
    }


def test_registered_names_are_the_recorded_ones():
    assert list_backbones() == sorted(SNAPSHOT)


@pytest.mark.parametrize("name", sorted(SNAPSHOT))
def test_parameters_and_state_dict_keys_unchanged(name):
    assert describe(name) == SNAPSHOT[name]


@pytest.mark.parametrize("name", sorted(SNAPSHOT))
def test_module_lives_in_its_family_folder(name):
    module = BACKBONES.get(name).factory.__module__
    assert module.startswith(f"plugattn.backbones.{SNAPSHOT[name]['family']}."), module


if __name__ == "__main__":
    snapshot = {name: describe(name) for name in list_backbones()}
    SNAPSHOT_PATH.write_text(json.dumps(snapshot, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(snapshot)} backbones to {SNAPSHOT_PATH}", file=sys.stderr)
