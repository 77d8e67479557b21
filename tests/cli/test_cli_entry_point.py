"""The `plugattn` console script (setup.py entry point) runs plugattn.cli.main."""
import importlib.metadata

from plugattn.cli import main


def test_console_script_points_at_main():
    # Every installed copy of the metadata is searched: a stale plugattn.egg-info in the source tree
    # (from an older build) may shadow the dist-info that `pip install -e .` wrote.
    found = [
        entry
        for dist in importlib.metadata.distributions()
        if dist.metadata["Name"] == "plugattn"
        for entry in dist.entry_points
        if entry.group == "console_scripts" and entry.name == "plugattn"
    ]
    assert found, "no plugattn console script is installed: run pip install -e ."
    assert {entry.value for entry in found} == {"plugattn.cli:main"}
    assert found[0].load() is main
