"""What the POP3 and IMAP sessions share: line framing, SASL PLAIN, the table rows."""

from __future__ import annotations

import base64
import enum

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portkit._errors import LocalProtocolError
from portkit.proto.sessions._line import (
    LINE_TOO_LONG,
    LineBuffer,
    Overflow,
    Transition,
    decode_sasl_plain,
)


def lines_of(chunks: list[bytes], max_line: int = 8) -> list[bytes | Overflow]:
    buffer = LineBuffer(max_line)
    got: list[bytes | Overflow] = []
    for chunk in chunks:
        buffer.feed(chunk)
        while (line := buffer.next_line()) is not None:
            got.append(line)
    return got


@pytest.mark.parametrize("one_byte", [False, True])
def test_lines_cr_removed_and_long_line_reported_once(one_byte: bool) -> None:
    data = b"a\r\nbb\n" + b"x" * 30 + b"\r\nc\r\n"
    chunks = [data[i : i + 1] for i in range(len(data))] if one_byte else [data]
    assert lines_of(chunks) == [b"a", b"bb", LINE_TOO_LONG, b"c"]


def test_an_endless_line_is_not_buffered() -> None:
    buffer = LineBuffer(8)
    buffer.feed(b"y" * 100)
    assert buffer.next_line() is LINE_TOO_LONG
    assert len(buffer) == 0
    buffer.feed(b"y" * 100)
    assert buffer.next_line() is None  # the same line: reported once
    buffer.feed(b"\nok\n")
    assert buffer.next_line() == b"ok"


def test_take_returns_raw_octets() -> None:
    buffer = LineBuffer(8)
    buffer.feed(b"ab\r\ncd")
    assert buffer.take(3) == b"ab\r"
    assert buffer.take(10) == b"\ncd"
    assert len(buffer) == 0


# Bytes rich in CR and LF, so that lines of every length around the cap come up.
_FRAMED = st.lists(st.sampled_from([b"a", b"\r", b"\n", b"\r\n", b"xxxx", b"\xff"]), max_size=40)


@given(_FRAMED.map(b"".join), st.integers(min_value=1, max_value=12))
def test_chunking_never_changes_the_lines(data: bytes, cut: int) -> None:
    chunks = [data[i : i + cut] for i in range(0, len(data), cut)]
    assert lines_of(chunks) == lines_of([data])


def test_sasl_plain() -> None:
    assert decode_sasl_plain(base64.b64encode(b"\0alice\0p w")) == ("", "alice", "p w")
    assert decode_sasl_plain(base64.b64encode(b"admin\0alice\0pw")) == ("admin", "alice", "pw")
    assert decode_sasl_plain(b"not base64!") is None
    assert decode_sasl_plain(base64.b64encode(b"no separators")) is None
    assert decode_sasl_plain(base64.b64encode(b"\0\xff\0x")) is None  # not UTF-8


def test_a_full_length_line_split_before_its_lf_is_not_too_long() -> None:
    line = b"y" * 8 + b"\r\n"
    assert lines_of([line[:9], line[9:]]) == lines_of([line]) == [b"y" * 8]


class Light(enum.Enum):
    RED = "red"
    GREEN = "green"


def test_a_transition_lands_only_where_its_row_says() -> None:
    row = Transition("handler", frozenset({Light.RED}))
    assert row.lands("demo", "STOP", Light.RED, None) is Light.RED
    assert row.lands("demo", "STOP", Light.GREEN, Light.RED) is Light.RED
    with pytest.raises(
        LocalProtocolError, match="demo command 'GO' in state 'red' cannot lead to 'green'"
    ):
        row.lands("demo", "GO", Light.RED, Light.GREEN)
