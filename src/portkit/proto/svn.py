"""Subversion's svnserve, recognised by the greeting it sends first.

The ra_svn protocol (Subversion's ``subversion/libsvn_ra_svn/protocol``): data items are
words, numbers, ``len:bytes`` strings and parenthesised lists, separated by whitespace.
On connect the server sends ``( success ( minver maxver ( mechs ) ( caps ) ) )``, today
``( success ( 2 2 ( ) ( edit-pipeline svndiff1 ... ) ) )``.
"""

from __future__ import annotations

import re

from portkit.proto._match import NEED_MORE, Match, Matcher, NoMatch, Verdict, expect_prefix

__all__ = ["SVN"]

MAX_GREETING = 1024

_HEAD = re.compile(rb"^\( success \( (\d+) (\d+) \( ")
_HEAD_START = re.compile(rb"\( success \( (?:\d+ ?){0,2}\(?")


def _judge(data: bytes, final: bool) -> Verdict:
    early = expect_prefix(data, [b"( success ( "])
    if early is not None:
        return early
    head = _HEAD.match(data)
    if head is None:
        if len(data) < 32 and _HEAD_START.fullmatch(data) and not final:
            return NEED_MORE
        return NoMatch(reason="not a ra_svn greeting")
    # The greeting is one list; it is complete when its parentheses balance.
    end = _list_end(data)
    if end is None:
        return NoMatch(reason="greeting too long") if final else NEED_MORE
    greeting = data[:end]
    caps = re.findall(rb"[a-z][\w-]*", greeting.rsplit(b"( ", 1)[-1])
    extra = f"protocol {head.group(1).decode()}-{head.group(2).decode()}"
    if caps:
        extra += "; " + " ".join(c.decode("ascii") for c in caps[:8])
    return Match(service="svn", product="Subversion", extra=extra)


def _list_end(data: bytes) -> int | None:
    """The end of the parenthesised list ``data`` starts with, or ``None`` if open."""
    depth = 0
    for index, byte in enumerate(data):
        depth += (byte == 0x28) - (byte == 0x29)
        if depth == 0:
            return index + 1
    return None


SVN = Matcher(name="svn", judge=_judge, max_bytes=MAX_GREETING)
