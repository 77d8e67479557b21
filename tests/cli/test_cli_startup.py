"""Start-up: ``plugattn --help``, ``plugattn list`` and ``plugattn list backbones`` import no torch (the
listings read the precomputed plugattn/_catalog.py), and the lazy top-level names of ``plugattn`` all resolve. Import sets are checked,
not times (the start-up time is measured as a benchmark, see README "Command line")."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

import plugattn
from plugattn.cli import COMMANDS, build_parser

REPO = Path(__file__).resolve().parents[2]


def modules_loaded_by(code: str) -> set:
    """The modules imported by running ``code`` in a fresh interpreter."""
    probe = f"import sys\n{code}\nimport json; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_help_imports_no_torch():
    loaded = modules_loaded_by(
        "from plugattn.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass"
    )
    assert "plugattn.cli" in loaded and "torch" not in loaded
    assert "torch" not in modules_loaded_by("import plugattn")


@pytest.mark.parametrize("argv", [["list"], ["list", "backbones"], ["list", "backbones", "--family", "vit"]])
def test_listing_imports_no_torch(argv):
    loaded = modules_loaded_by(f"from plugattn.cli import main\nassert main({argv!r}) == 0")
    assert "plugattn.cli.list_cmd" in loaded and "plugattn._catalog" in loaded
    unwanted = {"torch", "plugattn.attention", "plugattn.backbones", "plugattn.kernels", "plugattn.inject",
                "timm", "torchvision", "triton", "matplotlib"}
    assert not unwanted & loaded, sorted(unwanted & loaded)


def test_the_lazy_parser_lists_the_commands_with_their_own_help():
    assert build_parser(load=[]).format_help() == build_parser().format_help()
    for name, (module, _) in COMMANDS.items():
        assert build_parser(load=[name]).format_help() == build_parser().format_help(), module


@pytest.mark.parametrize("name", plugattn.__all__)
def test_every_public_name_resolves(name):
    assert getattr(plugattn, name) is getattr(__import__(plugattn._LOCATIONS[name], fromlist=[name]), name)


def test_star_import_and_unknown_names():
    namespace = {}
    exec("from plugattn import *", namespace)
    assert set(plugattn.__all__) <= set(namespace)
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        plugattn.not_a_name
    assert plugattn.kernels.eca is __import__("plugattn.kernels", fromlist=["eca"]).eca


def test_the_top_level_offers_every_public_name_of_its_submodules():
    import plugattn.attention

    assert set(plugattn.attention.__all__) <= set(plugattn.__all__)
