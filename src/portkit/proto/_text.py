"""Shared parsing for text protocols with an HTTP-style head (HTTP, RTSP, SIP).

RFC 9112 §2.1: a message is a start line, header fields each ending in CRLF, an empty
line, then the body. Servers in the wild also end lines with a bare LF; we accept both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from portkit.proto._match import NEED_MORE, Match, NeedMore, NoMatch, expect_prefix

__all__ = ["Head", "parse_head", "split_product", "status_head"]

MAX_HEAD_BYTES = 8192


@dataclass(frozen=True, slots=True, kw_only=True)
class Head:
    """A parsed start line and header fields (names lower-cased, first value kept)."""

    start_line: str
    headers: dict[str, str]
    body_offset: int


def parse_head(data: bytes) -> Head | None:
    """Parse the head of ``data``; ``None`` while the empty line has not arrived."""
    end = data.find(b"\r\n\r\n", 0, MAX_HEAD_BYTES)
    sep = 4
    lf_end = data.find(b"\n\n", 0, MAX_HEAD_BYTES)
    if lf_end >= 0 and (end < 0 or lf_end < end):
        end, sep = lf_end, 2
    if end < 0:
        return None
    text = data[:end].decode("latin-1")
    lines = text.replace("\r\n", "\n").split("\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if colon and name and not name[0].isspace():
            headers.setdefault(name.strip().lower(), value.strip())
    return Head(start_line=lines[0], headers=headers, body_offset=end + sep)


def split_product(token: str) -> tuple[str, str | None, str | None]:
    """Split a ``Server``-style value ``nginx/1.22.1 (Debian)`` into name, version, rest.

    RFC 9110 §10.2.4: product tokens are ``name/version`` followed by more products or
    comments in parentheses.
    """
    token = token.strip()
    first, _, rest = token.partition(" ")
    name, _, version = first.partition("/")
    return name, (version or None), (rest.strip() or None)


def status_head(
    data: bytes, final: bool, *, prefix: bytes, status: re.Pattern[str], not_status: str
) -> tuple[Head, re.Match[str]] | NoMatch | NeedMore:
    """The head of a response that starts ``prefix`` (RTSP, SIP) and its status-line match.

    Until there is one, the verdict so far: :data:`NEED_MORE`, or :class:`NoMatch` for
    another protocol, a head longer than :data:`MAX_HEAD_BYTES`, or a start line that
    ``status`` does not match (``not_status`` is then the reason).
    """
    early = expect_prefix(data, [prefix])
    if early is not None:
        assert not isinstance(early, Match)  # a prefix alone never matches
        return early
    head = parse_head(data)
    if head is None:
        too_long = final or len(data) > MAX_HEAD_BYTES
        return NoMatch(reason="head too long") if too_long else NEED_MORE
    found = status.match(head.start_line)
    if found is None:
        return NoMatch(reason=not_status)
    return head, found
