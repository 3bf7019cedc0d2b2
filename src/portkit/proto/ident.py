"""Ident (RFC 1413) servers, recognised by their answer to a query for a port pair.

§3: the client sends ``<port-on-server> , <port-on-client> CR LF``; §6: the server
answers ``<port-pair> : USERID : <opsys> : <user-id>`` or ``<port-pair> : ERROR :
<error-type>`` (INVALID-PORT, NO-USER, HIDDEN-USER, UNKNOWN-ERROR) and closes. The pair
we ask about is no connection of ours, so a server can only answer with an error.
"""

from __future__ import annotations

import re

from portkit.proto._match import NEED_MORE, Match, Matcher, NoMatch, Probe, Verdict, first_line

__all__ = ["IDENT", "IDENT_QUERY"]

MAX_LINE = 1000  # §6: a reply is at most 1000 characters

_REPLY = re.compile(
    rb"^\s*(\d{1,5})\s*,\s*(\d{1,5})\s*:\s*(USERID|ERROR)\s*:\s*([^:\r\n]*?)\s*(?::.*)?$"
)
_START = re.compile(rb"^\s*\d{0,5}\s*(?:,\s*\d{0,5}\s*(?::[^\n]*)?)?$")


def _judge(data: bytes, final: bool) -> Verdict:
    line = first_line(data, limit=MAX_LINE)
    if line is None:
        # Not yet a whole line: undecided while it can still become a reply.
        if not _START.match(data[:40]):
            return NoMatch(reason="not an ident reply")
        return NoMatch(reason="incomplete reply") if final else NEED_MORE
    found = _REPLY.match(line)
    if found is None:
        return NoMatch(reason="not an ident reply")
    kind = found.group(3).decode()
    detail = found.group(4).decode("ascii", "replace")[:60]
    return Match(service="ident", extra=f"{kind} {detail}".strip())


IDENT = Matcher(name="ident", judge=_judge, max_bytes=MAX_LINE + 2)

# Ports 65535 (on the server) and 113 (on ours): no connection of ours holds that pair.
IDENT_QUERY = Probe(
    name="ident-query",
    build=lambda host: b"65535, 113\r\n",
    matchers=("ident",),
    services=("auth", "ident"),
)
