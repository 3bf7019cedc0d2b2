"""Text that came from the network, made safe to show on a terminal.

A banner, product, version, page title or certificate field is chosen by whoever runs
the server. Written raw to a terminal, its control characters act: ``ESC [ 31 m``
turns the rest red, ``ESC ] ...`` can set the window title, a carriage return
overwrites the line before it, U+202E turns the rest of the line around. Everything a
human-readable output shows of such text goes through :func:`escape_controls`; the
machine formats (JSON, nmap XML) keep the exact value (XML replaces only what XML 1.0
cannot hold, see ``report/_xml.py``).

This is the only place that decides what is safe: the table, grep and ``probe``
outputs, and ``probe``'s evidence (bytes, through :func:`printable`), all use it.
"""

from __future__ import annotations

__all__ = ["escape_controls", "printable"]

_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escaped(char: str) -> str:
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def escape_controls(text: str) -> str:
    """``text`` with every character that would act on a terminal written as an escape.

    ``"Open\\x1b[31m"`` becomes ``"Open\\\\x1b[31m"`` (shown as ``Open\\x1b[31m``); tab,
    newline and carriage return become ``\\t``, ``\\n``, ``\\r``; other code points
    outside the printable ones become ``\\xNN``, ``\\uNNNN`` or ``\\UNNNNNNNN``.
    Printable text, accented letters and other scripts included, is unchanged.
    """
    # str.isprintable() is False for exactly what acts rather than prints: controls
    # (C0, DEL, C1), format characters (bidirectional overrides, zero-width joiners),
    # separators other than the space, lone surrogates (undecodable bytes), private
    # and unassigned code points.
    if text.isprintable():  # the common case, checked in C
        return text
    return "".join(c if c.isprintable() else _escaped(c) for c in text)


def printable(raw: bytes) -> str:
    """Decode ``raw`` (a server's bytes) for display: ASCII kept, anything else as ``\\xNN``."""
    return escape_controls(raw.decode("ascii", "backslashreplace"))
