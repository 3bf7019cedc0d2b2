"""``python -m portkit.host.apps.mail hash-password``: a password hash for the ``users`` option.

Reads the password from the terminal (twice, not echoed) or, when stdin is not a terminal,
from its first line; prints ``scrypt$...`` to put after ``name:`` in ``users``.
"""

from __future__ import annotations

import getpass
import sys

from portkit.host.apps.mail._auth import hash_password


def main(argv: list[str] | None = None) -> int:
    """Print a salted scrypt hash of a password read from the terminal or stdin."""
    args = sys.argv[1:] if argv is None else argv
    if args != ["hash-password"]:
        print("usage: python -m portkit.host.apps.mail hash-password", file=sys.stderr)
        return 2
    if sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            print("hash-password: the passwords differ", file=sys.stderr)
            return 2
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        print("hash-password: empty password", file=sys.stderr)
        return 2
    print(hash_password(password))
    return 0


if __name__ == "__main__":
    sys.exit(main())
