"""The errors a command reports as one ``error: ...`` line (no traceback), in a module that imports
nothing heavy, so the command line can catch them without loading torch."""
from __future__ import annotations


class MissingDependency(RuntimeError):
    """An optional package the command needs is not installed (the message says how to install it)."""


USER_ERRORS = (ValueError, MissingDependency, FileNotFoundError)
