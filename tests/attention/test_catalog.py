"""The precomputed attention table (plugattn/_catalog.py) that ``plugattn list`` prints is what the
registered modules are: class, parameters at 64 channels, paper.

The modules are counted in a fresh interpreter: other tests register modules of their own in this one."""
import subprocess
import sys

from plugattn._catalog import ATTENTION_FACTS, AttentionFacts


def built_in_facts() -> dict:
    code = "from plugattn._catalog_build import attention_facts; print(repr(attention_facts()))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return eval(done.stdout.strip().splitlines()[-1], {"AttentionFacts": AttentionFacts})


def test_table_is_what_the_registered_modules_are():
    assert ATTENTION_FACTS == built_in_facts(), "stale entry: regenerate with python -m plugattn._catalog_build"
