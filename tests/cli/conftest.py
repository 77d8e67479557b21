"""The ``cli`` fixture: ``plugattn.cli.main`` in-process, returning (status, stdout, stderr)."""
from typing import Tuple

import pytest

from plugattn.cli import main


@pytest.fixture
def cli(capsys):
    """Run ``main(argv)`` in-process; returns (status, stdout, stderr)."""
    def call(*argv: str) -> Tuple[int, str, str]:
        status = main(list(argv))
        captured = capsys.readouterr()
        return status, captured.out, captured.err
    return call
