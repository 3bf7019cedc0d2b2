"""The ``portkit`` command line's argument parser, built for the invoked command only.

Apart from :mod:`portkit.cli` so that a command run with no arguments at all, whose
module says what that means (``bare_arguments``), starts without argparse and the
``re``, ``enum`` and ``gettext`` it imports: a third of ``portkit listening``'s time.
"""

from __future__ import annotations

import argparse
import os
import re
import sys

from portkit._errors import EXIT_USAGE
from portkit.cli._commands import PROG, command_names, load

TYPE_CHECKING = False  # not `typing` at run time: start-up cost
if TYPE_CHECKING:
    from typing import Any, NoReturn

    from portkit.cli._commands import CommandModule

__all__ = ["Parser", "build_parser"]


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line and exit with status 2.

    An unknown option gets the nearest known one as a suggestion, and the help it points
    to is the invoked command's (``portkit scan --help``), not the top level's.
    """

    #: set on the top-level parser: the invoked command's parser, once known
    command_parser: argparse.ArgumentParser | None = None

    def _get_formatter(self) -> argparse.HelpFormatter:
        # argparse makes a formatter for every add_argument, and its default width comes
        # from shutil, whose import (with zlib, bz2, lzma) is a start-up cost every command
        # would pay; the width is the one argparse computes (the terminal's, less 2).
        return self.formatter_class(prog=self.prog, width=_terminal_width() - 2)  # type: ignore[call-arg]

    def error(self, message: str) -> NoReturn:
        target = self.command_parser or self
        hint = _option_hint(message, target)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}{hint} (see '{target.prog} --help')\n")


def _terminal_width() -> int:
    """$COLUMNS, else the width of the terminal on stdout, else 80 (as shutil answers)."""
    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


def _option_hint(message: str, parser: argparse.ArgumentParser) -> str:
    """``; did you mean --json?`` for an unrecognised option close to a known one.

    Also for a one-letter option given a value it refuses where longer options start
    with it (``-oZ`` read as ``-o Z``: did you mean -oN, -oX, -oG or -oA?).
    """
    known = [o for action in parser._actions for o in action.option_strings]
    explicit = re.match(r"argument ([^:]+): ignored explicit argument (.*)$", message)
    if explicit is not None:
        # A flag given a value it does not take; where the flag has spelled-out values of
        # its own (--detect=light), name them.
        flags = explicit[1].split("/")
        values = [o.partition("=")[2] for o in known if o.partition("=")[0] in flags and "=" in o]
        if values:
            return f"; {flags[0]} takes no value or one of: {', '.join(values)}"
        return f"; {flags[0]} takes no value"
    choice = re.match(r"argument (-\w)\b[^:]*: invalid choice: ", message)
    if choice is not None:
        longer = [o for o in known if o.startswith(choice[1]) and len(o) > 2 and o[2] != "-"]
        if not longer:
            return ""
        named = longer[0] if len(longer) == 1 else f"{', '.join(longer[:-1])} or {longer[-1]}"
        return f"; did you mean {named}?"
    prefix = "unrecognized arguments: "
    if not message.startswith(prefix):
        return ""
    import difflib

    for word in message.removeprefix(prefix).split():
        flag = word.partition("=")[0]
        if flag.startswith("-"):
            close = difflib.get_close_matches(flag, known, n=1, cutoff=0.6)
            if close:
                return f"; did you mean {close[0]}?"
    return ""


def _version() -> str:
    import portkit

    return portkit.__version__


class _VersionAction(argparse.Action):
    """``--version``: prints the version and exits."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        print(f"{PROG} {_version()}")
        parser.exit()


def build_parser(
    wanted: str | None, *, everything: bool = False
) -> tuple[Parser, dict[str, CommandModule]]:
    """The parser with only ``wanted`` configured (or every command, for completion)."""
    names = command_names()
    parser = Parser(
        prog=PROG,
        description=(
            "portkit: the port layer of networked software. A computer has one address and "
            "many server applications, each on its own port; portkit looks ports up, "
            "resolves endpoints, hosts applications, talks to them and discovers them."
        ),
        epilog="examples:\n  portkit lookup 443\n  portkit resolve http://testing.example.com:8080/login\n"
        "  portkit demo\n\nrun 'portkit COMMAND --help' for a command's options and examples",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action=_VersionAction, help="show the version and exit")
    parser.add_argument(
        "--debug", action="store_true", help="show tracebacks and debug logging on errors"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    loaded: dict[str, CommandModule] = {}
    for name in names:
        # Only the command being run is imported and configured; `portkit --help` imports
        # the others for their one-line summaries only.
        if wanted is not None and name != wanted and not everything:
            continue
        module = load(name)
        cmd_parser = sub.add_parser(
            name,
            help=module.SUMMARY,
            description=module.SUMMARY,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if name == wanted:
            parser.command_parser = cmd_parser
        if name == wanted or everything:
            loaded[name] = module
            cmd_parser.add_argument(
                "--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
            )
            module.configure(cmd_parser)
            # -v/-q mean the same in every command (a command may define one with its
            # own wording of that meaning first; see _args.add_verbosity).
            from portkit.cli._args import add_verbosity

            add_verbosity(cmd_parser)
    return parser, loaded
