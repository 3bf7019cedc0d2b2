"""The ``portkit`` commands: their names, and each one's module, imported when run.

Each subcommand lives in its own module, ``portkit/cli/cmd_<name>.py`` (``free-port`` is
``cmd_free_port.py``); see :mod:`portkit.cli` for what such a module defines.
"""

from __future__ import annotations

import os
import sys

# Not `typing` at run time: importing it costs every command a few milliseconds of
# start-up, and type checkers treat any name TYPE_CHECKING as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Protocol

    class CommandModule(Protocol):
        SUMMARY: str

        def configure(self, parser: argparse.ArgumentParser) -> None: ...

        def run(self, args: argparse.Namespace) -> int: ...


__all__ = ["PROG", "command_names", "load"]

PROG = "portkit"

_HERE = os.path.dirname(__file__)


def command_names() -> list[str]:
    """Every command's name, sorted."""
    # A directory listing rather than pkgutil: this runs on every start-up.
    names = {
        entry.removeprefix("cmd_").removesuffix(".py").replace("_", "-")
        for entry in os.listdir(_HERE)
        if entry.startswith("cmd_") and entry.endswith(".py")
    }
    return sorted(names)


def load(name: str) -> CommandModule:
    """The module of command ``name`` (imported now if it was not yet)."""
    # __import__ rather than importlib: importlib's own imports are start-up time.
    qualified = f"portkit.cli.cmd_{name.replace('-', '_')}"
    __import__(qualified)
    module: CommandModule = sys.modules[qualified]
    return module  # each cmd_ module has the three names
