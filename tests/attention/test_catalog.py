"""The precomputed attention table (plugattn/_catalog.py) that ``plugattn list`` prints is what the
registered modules are: class, parameters at 64 channels, paper."""
from plugattn._catalog import ATTENTION_FACTS
from plugattn._catalog_build import attention_facts
from plugattn.attention import list_attention


def test_the_table_covers_every_registered_module():
    assert sorted(ATTENTION_FACTS) == sorted(attention_facts()) == sorted(list_attention())


def test_table_is_what_the_modules_are():
    assert ATTENTION_FACTS == attention_facts(), "stale entry: regenerate with python -m plugattn._catalog_build"

