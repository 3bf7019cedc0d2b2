"""SEARCH keys (RFC 3501 section 6.4.4) compiled into predicates over one message.

A message is read and parsed only if a key needs its contents (headers, body, sent date):
flag, size and UID keys are answered from what the session already knows.
"""

from __future__ import annotations

import calendar
import email
import email.message
import email.utils
from collections.abc import Callable, Iterator

from portkit.proto.sessions.imap._grammar import (
    MAX_NESTING,
    BadCommand,
    Token,
    astring,
    in_ranges,
    parse_date,
    parse_sequence_set,
)
from portkit.proto.sessions.imap._mailbox import MessageRecord
from portkit.proto.sessions.imap._render import POLICY, split_header, unfold

__all__ = ["Predicate", "SearchContext", "compile_keys"]

_FLAG_KEYS = {
    "ANSWERED": ("\\Answered", True),
    "DELETED": ("\\Deleted", True),
    "DRAFT": ("\\Draft", True),
    "FLAGGED": ("\\Flagged", True),
    "SEEN": ("\\Seen", True),
    "UNANSWERED": ("\\Answered", False),
    "UNDELETED": ("\\Deleted", False),
    "UNDRAFT": ("\\Draft", False),
    "UNFLAGGED": ("\\Flagged", False),
    "UNSEEN": ("\\Seen", False),
}


class SearchContext:
    """One message during SEARCH; reads and parses it only if a key needs its contents."""

    def __init__(self, index: int, view: MessageRecord, read: Callable[[int], bytes]) -> None:
        self.index = index
        self.view = view
        self._read = read
        self._raw: bytes | None = None
        self._msg: email.message.Message | None = None

    def raw(self) -> bytes:
        if self._raw is None:
            self._raw = self._read(self.view.uid)
        return self._raw

    def msg(self) -> email.message.Message:
        if self._msg is None:
            self._msg = email.message_from_bytes(split_header(self.raw())[0], policy=POLICY)
        return self._msg

    def has_header(self, name: str) -> bool:
        return name in self.msg()

    def header(self, name: str) -> str:
        return " ".join(unfold(str(v)) for v in self.msg().get_all(name, []))

    def text(self, *, whole: bool) -> bytes:
        return self.raw() if whole else split_header(self.raw())[1]

    def internal_day(self) -> int:
        return int(self.view.internaldate // 86400)

    def sent_day(self) -> int:
        value = self.msg().get("Date")
        parsed = email.utils.parsedate_tz(str(value)) if value else None
        if parsed is None:
            return self.internal_day()
        return int(calendar.timegm(parsed[:6]) // 86400)  # the date as written, its own zone


Predicate = Callable[[SearchContext], bool]


def compile_keys(args: list[Token], *, messages: int, largest_uid: int) -> list[Predicate]:
    """The search keys of a SEARCH command (after any CHARSET) as predicates, all to hold.

    ``messages`` is how many messages the client knows (for ``*`` in sequence sets) and
    ``largest_uid`` the highest UID among them.
    """
    if not args:
        raise BadCommand("SEARCH needs at least one key")
    tokens = iter(args)
    return [_key(token, tokens, messages, largest_uid, 0) for token in tokens]


def _key(
    token: Token, rest: Iterator[Token], messages: int, largest_uid: int, depth: int
) -> Predicate:
    """One search key as a predicate; its arguments are taken from ``rest``."""
    if depth > MAX_NESTING:  # NOT NOT NOT ... would otherwise recurse without bound
        raise BadCommand(f"search keys nested more than {MAX_NESTING} deep")

    def arg() -> Token:
        try:
            return next(rest)
        except StopIteration:
            raise BadCommand("search key is missing its argument") from None

    def sub(first: Token, more: Iterator[Token]) -> Predicate:
        return _key(first, more, messages, largest_uid, depth + 1)

    if isinstance(token, list):
        inner = iter(token)
        parts = [sub(t, inner) for t in inner]
        return lambda c: all(p(c) for p in parts)
    if isinstance(token, bytes):
        raise BadCommand("a search key must be an atom")
    key = token.upper()
    if key in _FLAG_KEYS:
        flag, present = _FLAG_KEYS[key]
        return lambda c: (flag in c.view.flags) == present
    if key == "ALL":
        return lambda c: True
    if key == "NEW":
        return lambda c: c.view.recent and "\\Seen" not in c.view.flags
    if key == "OLD":
        return lambda c: not c.view.recent
    if key == "RECENT":
        return lambda c: c.view.recent
    if key in ("KEYWORD", "UNKEYWORD"):
        arg()  # keywords are not stored: no message has one
        return (lambda c: False) if key == "KEYWORD" else (lambda c: True)
    if key == "NOT":
        inner_key = sub(arg(), rest)
        return lambda c: not inner_key(c)
    if key == "OR":
        left = sub(arg(), rest)
        right = sub(arg(), rest)
        return lambda c: left(c) or right(c)
    if key in ("LARGER", "SMALLER"):
        size_text = astring(arg(), "size")
        if not size_text.isdigit():
            raise BadCommand(f"bad size {size_text!r}")
        size = int(size_text)
        if key == "LARGER":
            return lambda c: c.view.size > size
        return lambda c: c.view.size < size
    if key == "UID":
        uid_ranges = parse_sequence_set(astring(arg(), "uid set"), largest_uid)
        return lambda c: in_ranges(c.view.uid, uid_ranges)
    if key in ("BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE"):
        day = parse_date(arg())
        sent = key.startswith("SENT")
        compare: Callable[[int], bool] = {
            "BEFORE": day.__gt__,
            "ON": day.__eq__,
            "SINCE": day.__le__,
        }[key.removeprefix("SENT")]
        return lambda c: compare(c.sent_day() if sent else c.internal_day())
    if key in ("FROM", "TO", "CC", "BCC", "SUBJECT"):
        needle = astring(arg(), key).lower()
        return lambda c: needle in c.header(key).lower()
    if key == "HEADER":
        name = astring(arg(), "header name")
        needle = astring(arg(), "header value").lower()
        return lambda c: c.has_header(name) and needle in c.header(name).lower()
    if key in ("BODY", "TEXT"):
        needle_bytes = astring(arg(), key).lower().encode("utf-8")
        return lambda c: needle_bytes in c.text(whole=key == "TEXT").lower()
    if key[:1].isdigit() or key[:1] == "*":
        seq_ranges = parse_sequence_set(token, messages)
        return lambda c: in_ranges(c.index + 1, seq_ranges)
    raise BadCommand(f"unknown search key {token}")
