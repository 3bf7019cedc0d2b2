"""``portkit mail``: tools for the development mail server (``smtp``, ``pop3``, ``imap`` kinds)."""

from __future__ import annotations

import argparse

from portkit._errors import EXIT_OK, UsageError

SUMMARY = "tools for the mail applications: hash-password for the 'users' option"

EPILOG = """\
examples:
  portkit mail hash-password                   asks twice on a terminal, not echoed
  echo wonderland | portkit mail hash-password reads the first line of stdin
  portkit mail hash-password --help

hash-password prints a salted scrypt hash ("scrypt$...") to put after "name:" in a
mail application's users option (docs/mail.md).
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    tools = parser.add_subparsers(dest="tool", metavar="TOOL", parser_class=type(parser))
    hashing = tools.add_parser(
        "hash-password",
        help="print a salted scrypt hash of a password read from the terminal or stdin",
        description="Print a salted scrypt hash of a password for a mail application's "
        "users option. On a terminal the password is asked twice and not echoed; "
        "otherwise the first line of stdin is read.",
        epilog="example:\n  echo wonderland | portkit mail hash-password",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    hashing.set_defaults(tool="hash-password")


def _read_password() -> str:
    import getpass
    import sys

    if sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise UsageError("hash-password: the two passwords differ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise UsageError("hash-password: empty password")
    return password


def run(args: argparse.Namespace) -> int:
    if args.tool is None:
        raise UsageError("give a tool: 'portkit mail hash-password' (see 'portkit mail --help')")
    from portkit.host.apps.mail._auth import hash_password

    print(hash_password(_read_password()))
    return EXIT_OK
