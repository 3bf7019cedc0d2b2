"""The Erlang Port Mapper Daemon, via its ``NAMES_REQ`` request.

Erlang/OTP's distribution protocol (ERTS User's Guide, "Distribution Protocol", EPMD
Protocol): every request is a 2-byte big-endian length then the request. ``NAMES_REQ``
is the single byte 110 (``n``); the reply is the daemon's own port number as 4 bytes
big-endian, then one line ``name <node> at port <port>\\n`` per registered node, and the
daemon closes the connection.
"""

from __future__ import annotations

import re

from portkit.proto._match import NEED_MORE, Match, Matcher, NoMatch, Probe, Verdict

__all__ = ["EPMD", "EPMD_NAMES"]

MAX_REPLY = 4096

_LINE = re.compile(rb"name (\S+) at port (\d{1,5})\n")


def _judge(data: bytes, final: bool) -> Verdict:
    if len(data) >= 2 and data[:2] != b"\x00\x00":
        return NoMatch(reason="not a port number")  # epmd's own port is below 65536
    if len(data) < 4:
        return NoMatch(reason="short reply") if final else NEED_MORE
    port = int.from_bytes(data[:4], "big")
    if port == 0:
        return NoMatch(reason="port zero")
    body = data[4:]
    nodes = []
    pos = 0
    for found in _LINE.finditer(body):
        if found.start() != pos:
            return NoMatch(reason="not a node list")
        nodes.append(f"{found.group(1).decode('utf-8', 'replace')}:{found.group(2).decode()}")
        pos = found.end()
    rest = body[pos:]
    if rest and not (b"name ".startswith(rest[:5]) and b"\n" not in rest):
        return NoMatch(reason="not a node list")
    if not final:
        return NEED_MORE  # the list ends when epmd closes
    if rest:
        return NoMatch(reason="incomplete node list")
    extra = f"epmd port {port}" + (f"; nodes {', '.join(nodes[:8])}" if nodes else "; no nodes")
    return Match(service="epmd", product="Erlang Port Mapper Daemon", extra=extra)


EPMD = Matcher(name="epmd", judge=_judge, max_bytes=MAX_REPLY)

EPMD_NAMES = Probe(
    name="epmd-names",
    build=lambda host: b"\x00\x01n",
    matchers=("epmd",),
    services=("epmd",),
)
