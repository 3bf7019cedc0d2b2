"""Text from the network, escaped for a terminal: one function, tested on its own."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portkit._display import escape_controls, printable


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("OpenSSH_9.2p1 Debian-2", "OpenSSH_9.2p1 Debian-2"),
        ("Open\x01\x1b[31mred", "Open\\x01\\x1b[31mred"),
        ("a\tb\r\nc", "a\\tb\\r\\nc"),
        ("\x7f\x9b", "\\x7f\\x9b"),  # DEL, and C1's one-byte CSI
        ("abc\u202edcba", "abc\\u202edcba"),  # a right-to-left override
        ("zero\u200bwidth", "zero\\u200bwidth"),
        ("Postfix (Debian/GNU) é 日本", "Postfix (Debian/GNU) é 日本"),
        ("\udcff", "\\udcff"),  # a lone surrogate: an undecodable byte
        ("\U000e0001", "\\U000e0001"),  # a tag character
    ],
)
def test_escape_controls(raw: str, shown: str) -> None:
    assert escape_controls(raw) == shown


@given(st.text())
def test_nothing_unprintable_survives(text: str) -> None:
    shown = escape_controls(text)
    assert shown.isprintable()
    assert escape_controls(shown) == shown  # already safe text is left alone


def test_printable_bytes() -> None:
    assert printable(b"SSH-2.0-x\x1b[0m\xff\r\n") == "SSH-2.0-x\\x1b[0m\\xff\\r\\n"
