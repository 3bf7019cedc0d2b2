"""IMAP command syntax (RFC 3501 section 9): tokens, commands and the small value parsers.

A command's line text and literals become a list of :data:`Token`; the handlers then read
their arguments with the helpers here, which raise :class:`BadCommand` (answered ``BAD``)
for anything malformed.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Union

from portkit._errors import RemoteProtocolError

__all__ = [
    "LITERAL_RE",
    "MAX_NESTING",
    "MONTHS",
    "SYSTEM_FLAGS",
    "BadCommand",
    "Command",
    "Token",
    "Tokenizer",
    "astring",
    "in_ranges",
    "is_inbox",
    "list_match",
    "parse_date",
    "parse_flags",
    "parse_sequence_set",
    "parse_store_item",
    "valid_tag",
]

#: Parenthesized lists and search keys nested deeper than this are refused with BAD.
MAX_NESTING = 64

#: The flags stored permanently (RFC 3501 section 2.3.2); keywords are not kept.
SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")
_FLAG_LOOKUP = {f.lower(): f for f in SYSTEM_FLAGS}

MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

Token = Union[str, bytes, "list[Token]"]
# str: an atom (including NIL, numbers, sequence sets, BODY[...] fetch attributes);
# bytes: a quoted string or literal; list: a parenthesized list.

#: A line ending in a literal announcement ``{n}`` or, non-synchronizing, ``{n+}``
#: (RFC 3501 section 4.3, RFC 7888).
LITERAL_RE = re.compile(rb"\{(\d{1,20})(\+?)\}$")


class BadCommand(RemoteProtocolError):
    """A syntax error in a command's arguments: answered BAD, the state is unchanged."""


@dataclass(slots=True)
class Command:
    """One complete command: its tag, its name in upper case (``UID FETCH`` is one name)."""

    tag: str
    name: str
    args: list[Token] = field(default_factory=list)


class Tokenizer:
    """Turns the segments of one command (line text and literals) into tokens."""

    def __init__(self) -> None:
        self.root: list[Token] = []
        self.stack: list[list[Token]] = [self.root]

    def feed_text(self, text: bytes) -> None:
        i, n = 0, len(text)
        while i < n:
            c = text[i]
            if c == 0x20:
                i += 1
            elif c == 0x28:  # (
                if len(self.stack) > MAX_NESTING:
                    raise RemoteProtocolError(f"lists nested more than {MAX_NESTING} deep")
                new: list[Token] = []
                self.stack[-1].append(new)
                self.stack.append(new)
                i += 1
            elif c == 0x29:  # )
                if len(self.stack) == 1:
                    raise RemoteProtocolError("unbalanced ')' in command")
                self.stack.pop()
                i += 1
            elif c == 0x22:  # "  quoted string, RFC 3501 section 4.3
                i = self._quoted(text, i + 1)
            elif c == 0x7B:  # { only at the end of a line, handled by the framer
                raise RemoteProtocolError("literal marker not at end of line")
            else:
                i = self._atom(text, i)

    def _quoted(self, text: bytes, i: int) -> int:
        out = bytearray()
        n = len(text)
        while True:
            if i >= n:
                raise RemoteProtocolError("unterminated quoted string")
            ch = text[i]
            if ch == 0x5C:  # backslash quotes only " and \
                if i + 1 >= n or text[i + 1] not in b'"\\':
                    raise RemoteProtocolError("bad escape in quoted string")
                out.append(text[i + 1])
                i += 2
            elif ch == 0x22:
                self.stack[-1].append(bytes(out))
                return i + 1
            else:
                out.append(ch)
                i += 1

    def _atom(self, text: bytes, i: int) -> int:
        start, n = i, len(text)
        depth = 0
        while i < n:
            ch = text[i]
            if ch < 0x20 or ch == 0x7F:
                raise RemoteProtocolError("control character in command")
            if ch == 0x5B:  # [ opens a section: spaces and parens allowed inside
                depth += 1
            elif ch == 0x5D and depth:
                depth -= 1
            elif depth == 0 and ch in (0x20, 0x28, 0x29, 0x22, 0x7B):
                break
            i += 1
        if depth:
            raise RemoteProtocolError("unbalanced '[' in command")
        try:
            self.stack[-1].append(text[start:i].decode("ascii"))
        except UnicodeDecodeError:
            raise RemoteProtocolError("8-bit characters in an atom") from None
        return i

    def feed_literal(self, data: bytes) -> None:
        self.stack[-1].append(data)

    def finish(self) -> list[Token]:
        if len(self.stack) != 1:
            raise RemoteProtocolError("unbalanced '(' in command")
        return self.root


def astring(token: Token, what: str) -> str:
    """An atom or string argument as text; ``what`` names it in the error."""
    if isinstance(token, list):
        raise BadCommand(f"{what} must be a string, not a list")
    if isinstance(token, bytes):
        try:
            return token.decode("utf-8")
        except UnicodeDecodeError:
            raise BadCommand(f"{what} is not utf-8") from None
    return token


def parse_sequence_set(text: str, largest: int) -> list[tuple[int, int]]:
    """Parse ``1:3,5,7:*`` into inclusive ranges; ``*`` is ``largest`` (RFC 3501 9)."""

    def number(part: str) -> int:
        if part == "*":
            return largest
        if not part.isdigit() or part.startswith("0") or len(part) > 10:
            raise BadCommand(f"bad sequence number {part!r}")
        return int(part)

    ranges: list[tuple[int, int]] = []
    if not text:
        raise BadCommand("empty sequence set")
    for item in text.split(","):
        low, sep, high = item.partition(":")
        a = number(low)
        b = number(high) if sep else a
        ranges.append((min(a, b), max(a, b)))
    return ranges


def in_ranges(value: int, ranges: Sequence[tuple[int, int]]) -> bool:
    return any(a <= value <= b for a, b in ranges)


def parse_date(token: Token) -> int:
    """An IMAP ``date`` (``1-Feb-1994``) as days since the epoch (RFC 3501 section 9)."""
    text = astring(token, "date")
    try:
        day, mon, year = text.split("-")
        month = [m.lower() for m in MONTHS].index(mon.lower()) + 1
        return calendar.timegm((int(year), month, int(day), 0, 0, 0)) // 86400
    except ValueError:
        raise BadCommand(f"bad date {text!r}") from None


def parse_flags(tokens: Sequence[Token]) -> frozenset[str]:
    """The system flags named in a flag list; keywords are accepted but not kept."""
    flags: set[str] = set()
    for token in tokens:
        if not isinstance(token, str):
            raise BadCommand("flags must be atoms")
        known = _FLAG_LOOKUP.get(token.lower())
        if known is not None:
            flags.add(known)
        elif token.startswith("\\") and token.lower() != "\\recent":
            # \Recent cannot be stored (RFC 3501 2.3.2); other \ names are not flags at all.
            raise BadCommand(f"unknown system flag {token}")
        # keywords are accepted but not stored (PERMANENTFLAGS lists no \*)
    return frozenset(flags)


def parse_store_item(token: Token) -> tuple[str, bool]:
    """STORE's item name (RFC 3501 6.4.6): ``FLAGS``, ``+FLAGS`` or ``-FLAGS``, and whether
    ``.SILENT`` follows."""
    item = astring(token, "store item").upper()
    mode, _, silent = item.partition(".")
    if mode not in ("FLAGS", "+FLAGS", "-FLAGS") or silent not in ("", "SILENT"):
        raise BadCommand(f"bad store item {item}")
    return mode, bool(silent)


def is_inbox(token: Token) -> bool:
    """Whether a mailbox argument names INBOX (case-insensitive, RFC 3501 5.1)."""
    return astring(token, "mailbox").upper() == "INBOX"


def valid_tag(tag: bytes) -> bool:
    # RFC 3501 section 9: tag = 1*<any ASTRING-CHAR except "+">
    return all(0x20 < c < 0x7F and c not in b'(){%*"\\+' for c in tag)


def list_match(pattern: str, name: str) -> bool:
    """LIST wildcard match (RFC 3501 6.3.8): ``*`` anything, ``%`` anything but ``/``."""
    regex = "".join(
        ".*" if ch == "*" else "[^/]*" if ch == "%" else re.escape(ch) for ch in pattern
    )
    if re.fullmatch(regex, name):
        return True
    return pattern.upper() == "INBOX" and name == "INBOX"
