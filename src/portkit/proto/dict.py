"""DICT servers (RFC 2229), recognised by the banner they send on connect.

§3.1: the server greets with ``220 text capabilities msg-id``: the capabilities in angle
brackets (``<auth.mime>``, possibly empty ``<>``), then a message ID for APOP-style
authentication, ``<...@...>`` (§3.11). That tail sets the banner apart from the 220 of
SMTP and FTP. dictd (the reference server) puts its name and version in the text:
``220 host dictd 1.13.0/rf on Linux 6.1.0 <auth.mime> <1.2.3@host>``.
"""

from __future__ import annotations

import re

from portkit.proto._match import NEED_MORE, Match, Matcher, NoMatch, Verdict, expect_prefix

__all__ = ["DICT"]

MAX_LINE = 1024
_BANNER = re.compile(
    rb"^220 (?P<text>[^\r\n<>]*?) ?<(?P<caps>[\w.]*)> <(?P<msgid>[^<>@\s]+@[^<>\s]+)>\r?$"
)
# The version as dictd prints it, its build tag included ("1.13.0/rf"), as nmap -sV reports it.
_DICTD = re.compile(rb"\bdictd (\d[\w.]*(?:/\w+)?)(?: on (.+))?$")


def _judge(data: bytes, final: bool) -> Verdict:
    early = expect_prefix(data, [b"220 "])
    if early is not None:
        return early
    end = data.find(b"\n", 0, MAX_LINE)
    if end < 0:
        if len(data) >= MAX_LINE:
            return NoMatch(reason="banner too long")
        return NoMatch(reason="incomplete banner") if final else NEED_MORE
    found = _BANNER.match(data[:end])
    if found is None:
        return NoMatch(reason="not a DICT banner")
    server = _DICTD.search(found["text"])
    if server is None:
        return Match(service="dict", extra=found["text"].decode("utf-8", "replace")[:80] or None)
    system = server.group(2)
    return Match(
        service="dict",
        product="dictd",
        version=server.group(1).decode("ascii"),
        extra=system.decode("utf-8", "replace")[:80] if system else None,
    )


DICT = Matcher(name="dict", judge=_judge, max_bytes=MAX_LINE)
