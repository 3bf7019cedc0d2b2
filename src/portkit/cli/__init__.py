"""The ``portkit`` command line.

Each subcommand lives in its own module, ``portkit/cli/cmd_<name>.py`` (``free-port`` is
``cmd_free_port.py``), which defines three things:

- ``SUMMARY``: one line for ``portkit --help``;
- ``configure(parser)``: adds the command's arguments (with an example in the epilog);
- ``run(args) -> int``: does the work and returns the exit status.

Only the invoked command's module is imported, and command modules import their heavy
dependencies inside ``run``, so ``portkit lookup 443`` starts fast. Every
:class:`~portkit.PortkitError` becomes one line on stderr and the exit code its class
names (see :mod:`portkit._errors`); tracebacks only with ``--debug``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
from collections.abc import Sequence
from types import ModuleType

from portkit._errors import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    PortkitError,
    UsageError,
)

# Not `typing` at run time: importing it costs every command a few milliseconds of
# start-up, and type checkers treat any name TYPE_CHECKING as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn, Protocol

    class CommandModule(Protocol):
        SUMMARY: str

        def configure(self, parser: argparse.ArgumentParser) -> None: ...

        def run(self, args: argparse.Namespace) -> int: ...


__all__ = ["console_main", "main"]

PROG = "portkit"


class _Parser(argparse.ArgumentParser):
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


def _command_names() -> list[str]:
    # A directory listing rather than pkgutil: this runs on every start-up.
    names = {
        entry.removeprefix("cmd_").removesuffix(".py").replace("_", "-")
        for directory in __path__
        for entry in os.listdir(directory)
        if entry.startswith("cmd_") and entry.endswith(".py")
    }
    return sorted(names)


def _load(name: str) -> CommandModule:
    module: ModuleType = importlib.import_module(f"portkit.cli.cmd_{name.replace('-', '_')}")
    return module  # each cmd_ module has the three names


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


def _build_parser(
    wanted: str | None, *, everything: bool = False
) -> tuple[_Parser, dict[str, CommandModule]]:
    """The parser with only ``wanted`` configured (or every command, for completion)."""
    names = _command_names()
    parser = _Parser(
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
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    loaded: dict[str, CommandModule] = {}
    for name in names:
        # Only the command being run is imported and configured; `portkit --help` imports
        # the others for their one-line summaries only.
        if wanted is not None and name != wanted and not everything:
            continue
        module = _load(name)
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


def _wanted_command(argv: Sequence[str]) -> str | None:
    """The command ``argv`` names (its first non-option word), or None.

    Raises:
        UsageError: that word is no command; the message suggests the nearest one.
    """
    names = _command_names()
    for token in argv:
        if token.startswith("-"):
            continue
        if token in names:
            return token
        import difflib

        close = difflib.get_close_matches(token, names, n=2, cutoff=0.6)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise UsageError(f"unknown command {token!r}{hint} (see '{PROG} --help')")
    return None


def full_parser() -> argparse.ArgumentParser:
    """The parser with every command configured: what shell completion is generated from."""
    return _build_parser(None, everything=True)[0]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``) and return the status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        wanted = _wanted_command(args_list)
    except UsageError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return exc.exit_code
    parser, loaded = _build_parser(wanted)
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:  # --help, --version and usage errors end here
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    debug = bool(getattr(args, "debug", False))
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    module = loaded[args.command]
    global _quick_exit
    quick_exit = getattr(module, "quick_exit", None)
    _quick_exit = bool(quick_exit(args) if quick_exit else getattr(module, "QUICK_EXIT", False))
    _configure_logging(args, debug=debug)
    try:
        return module.run(args)
    except PortkitError as exc:
        if debug:
            raise
        print(f"{PROG}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`portkit lookup --search mail | head`): not an error.
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as exc:
        if debug:
            raise
        print(
            f"{PROG}: internal error: {type(exc).__name__}: {exc} (run with --debug for details)",
            file=sys.stderr,
        )
        return EXIT_FAILURE


def _configure_logging(args: argparse.Namespace, *, debug: bool) -> None:
    """--debug: everything; -v: portkit's progress notes (-vv: its debug notes); -q: only
    warnings and errors. Without any of them logging stays unconfigured (warnings only).
    """
    from portkit.cli._args import verbosity

    level = verbosity(args)
    if not debug and level == 0:
        return
    import logging

    if debug:
        logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(name)s: %(message)s")
    elif level > 0:
        logging.basicConfig(format=f"{PROG}: %(message)s")
        logging.getLogger("portkit").setLevel(logging.INFO if level == 1 else logging.DEBUG)
    else:
        logging.getLogger("portkit").setLevel(logging.WARNING)


#: Whether the command main() ran declared ``QUICK_EXIT``: see :func:`console_main`.
_quick_exit = False


def console_main() -> None:
    """Entry point of the ``portkit`` console script (and ``python -m portkit``).

    A quick command that declares ``QUICK_EXIT = True`` (it leaves no file, thread or
    atexit work to finish), or whose ``quick_exit(args)`` says so for the arguments it
    was given, ends without the interpreter's teardown, which clears every module,
    searches the whole heap for cycles and frees every object one by one: for
    ``portkit listening`` that costs more than reading the kernel's socket table, for
    a one-port ``portkit scan`` about a sixth of its run.
    """
    status = main()
    if _quick_exit and _flushed():
        os._exit(status)
    sys.exit(status)


def _flushed() -> bool:
    """Flush stdout and stderr; False if that fails (a closed pipe), so the normal exit
    reports it as it always has."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:
        return False
    return True
