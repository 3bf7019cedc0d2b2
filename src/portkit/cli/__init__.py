"""The ``portkit`` command line.

Each subcommand lives in its own module, ``portkit/cli/cmd_<name>.py`` (``free-port`` is
``cmd_free_port.py``), which defines three things:

- ``SUMMARY``: one line for ``portkit --help``;
- ``configure(parser)``: adds the command's arguments (with an example in the epilog);
- ``run(args) -> int``: does the work and returns the exit status;

and may define ``bare_arguments()``: the arguments argparse would make of the command
given alone, so that the command's most common call starts without argparse (and the
``re`` and ``enum`` it imports); ``tests/test_cli_frame.py`` holds the two equal.

Only the invoked command's module is imported, and command modules import their heavy
dependencies inside ``run``, so ``portkit lookup 443`` starts fast. Every
:class:`~portkit.PortkitError` becomes one line on stderr and the exit code its class
names (see :mod:`portkit._errors`); tracebacks only with ``--debug``.
"""

from __future__ import annotations

import os
import sys

from portkit._errors import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    PortkitError,
    UsageError,
)
from portkit.cli._commands import PROG
from portkit.cli._commands import command_names as _command_names
from portkit.cli._commands import load as _load

# Not `typing` at run time: importing it costs every command a few milliseconds of
# start-up, and type checkers treat any name TYPE_CHECKING as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

__all__ = ["console_main", "main"]


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
    from portkit.cli._parser import build_parser

    return build_parser(None, everything=True)[0]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``) and return the status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        wanted = _wanted_command(args_list)
    except UsageError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return exc.exit_code
    module = _load(wanted) if wanted is not None and args_list == [wanted] else None
    bare = getattr(module, "bare_arguments", None)
    if module is not None and bare is not None:
        # The command alone, no option: its module knows those arguments without argparse
        # (tests/test_cli_frame.py holds them equal to what argparse would make).
        args = bare()
        debug = False
    else:
        from portkit.cli._parser import build_parser

        parser, loaded = build_parser(wanted)
        try:
            args = parser.parse_args(args_list)
        except SystemExit as exc:  # --help, --version and usage errors end here
            return exc.code if isinstance(exc.code, int) else EXIT_USAGE
        debug = bool(getattr(args, "debug", False))
        if args.command is None:
            parser.print_help()
            return EXIT_USAGE
        module = loaded[args.command]
        _configure_logging(args, debug=debug)
    global _quick_exit
    quick_exit = getattr(module, "quick_exit", None)
    _quick_exit = bool(quick_exit(args) if quick_exit else getattr(module, "QUICK_EXIT", False))
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
