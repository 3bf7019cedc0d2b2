"""NNTP news servers: the greeting, and the answer to ``CAPABILITIES``.

RFC 3977 §5.1.1: on connect the server sends 200 (posting allowed), 201 (no posting),
400 (service temporarily unavailable) or 502 (permanently unavailable). Such a greeting
alone could be any line-oriented server, so it names NNTP only when it says so (INN,
Leafnode, "news"); otherwise the answer to ``CAPABILITIES`` (§5.2) decides: ``101``, then
one capability per line with ``VERSION 2`` first, ended by a line holding ``.``; the
``IMPLEMENTATION`` capability (§5.2.2) names the server.
"""

from __future__ import annotations

import re

from portkit.proto._match import NEED_MORE, Match, Matcher, NoMatch, Probe, Verdict

__all__ = ["NNTP", "NNTP_CAPABILITIES"]

MAX_LINE = 512
MAX_REPLY = 4096

_GREETING = re.compile(rb"^(200|201|400|502)[ -](.*)$")
_SAYS_NEWS = re.compile(rb"\b(nntp|nnrp|news|INN|leafnode|newsd|diablo|posting)", re.IGNORECASE)
_KNOWN = (
    (re.compile(rb"InterNetNews (?:NNRP )?server INN ([\w.]+)"), "INN"),
    (re.compile(rb"\bINN ([\d.]+)"), "INN"),
    (re.compile(rb"Leafnode NNTP Daemon, version ([\w.]+)", re.IGNORECASE), "Leafnode"),
    (re.compile(rb"\bleafnode[- ]v?([\d][\w.]*)", re.IGNORECASE), "Leafnode"),
)


def _named(text: bytes) -> tuple[str | None, str | None]:
    for pattern, product in _KNOWN:
        found = pattern.search(text)
        if found:
            return product, found.group(1).decode("ascii")
    return None, None


def _judge(data: bytes, final: bool) -> Verdict:
    first = data.find(b"\n", 0, MAX_LINE + 1)
    if first < 0:
        if len(data) > MAX_LINE:
            return NoMatch(reason="line too long")
        if not any(code.startswith(data[:3]) for code in (b"200", b"201", b"400", b"502")):
            return NoMatch(reason="not an NNTP greeting")
        return NoMatch(reason="incomplete") if final else NEED_MORE
    line = data[:first].rstrip(b"\r")
    greeting = _GREETING.match(line)
    if greeting is None:
        return NoMatch(reason="not an NNTP greeting")
    extra = "posting allowed" if greeting.group(1) == b"200" else None
    if greeting.group(1) == b"201":
        extra = "no posting"
    if _SAYS_NEWS.search(greeting.group(2)):
        product, version = _named(greeting.group(2))
        return Match(service="nntp", product=product, version=version, extra=extra)
    # A plain greeting: only the capability list makes it NNTP.
    rest = data[first + 1 :]
    if not rest:
        return NoMatch(reason="greeting alone") if final else NEED_MORE
    if not (rest.startswith(b"101") or b"101".startswith(rest[:3])):
        return NoMatch(reason="no capability list")
    end = rest.find(b"\r\n.\r\n")
    if end < 0:
        return NoMatch(reason="incomplete capability list") if final else NEED_MORE
    caps = rest[:end].split(b"\r\n")[1:]
    if not caps or not caps[0].startswith(b"VERSION "):
        return NoMatch(reason="capabilities do not start with VERSION")
    product = version = None
    for cap in caps:
        if cap.upper().startswith(b"IMPLEMENTATION "):
            product, version = _named(cap)
            if product is None:
                product = cap[15:].decode("utf-8", "replace").strip()[:60] or None
    return Match(service="nntp", product=product, version=version, extra=extra)


NNTP = Matcher(name="nntp", judge=_judge, max_bytes=MAX_LINE + 2 + MAX_REPLY)

NNTP_CAPABILITIES = Probe(
    name="nntp-capabilities",
    build=lambda host: b"CAPABILITIES\r\n",
    matchers=("nntp",),
    services=("nntp", "nntps"),
)
