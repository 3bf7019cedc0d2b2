"""SOCKS proxies: version 5 via the method-selection greeting, version 4 via a CONNECT.

RFC 1928 §3: the client sends VER=5, NMETHODS and the methods it offers (here X'00', no
authentication required, and X'02', username/password); the server answers with exactly two bytes, VER=5 and
the METHOD it selects (X'00', X'02' username/password (RFC 1929), ..., or X'FF' "no
acceptable methods"), and then waits for a request. Nothing is connected anywhere.

SOCKS 4 (the protocol document "SOCKS: A protocol for TCP proxies across firewalls",
Ying-Da Lee) has no greeting: the first request is the CONNECT itself, VN=4, CD=1,
DSTPORT, DSTIP, USERID, NUL. The reply is exactly eight bytes, VN=0 and CD 90 (granted),
91 (rejected or failed), 92 or 93 (identd checks), then DSTPORT and DSTIP (ignored).
The request asks for port 0 on the proxy's own loopback: nothing can listen on port 0,
so even a proxy that grants it connects nowhere, and nothing leaves the proxy's host.
"""

from __future__ import annotations

from portkit.proto._match import NEED_MORE, Match, Matcher, NoMatch, Probe, Verdict

__all__ = ["SOCKS4", "SOCKS4_CONNECT", "SOCKS5", "SOCKS5_GREETING"]

_METHODS = {
    0x00: "no authentication",
    0x01: "GSSAPI",
    0x02: "username/password",
    0xFF: "no acceptable methods",
}


def _judge(data: bytes, final: bool) -> Verdict:
    if data[:1] not in (b"", b"\x05"):
        return NoMatch(reason="not SOCKS version 5")
    if len(data) > 2:
        return NoMatch(reason="longer than a method selection")
    if len(data) == 2 and data[1] not in _METHODS and not 0x03 <= data[1] <= 0x09:
        return NoMatch(reason="unknown method")
    if not final:
        return NEED_MORE  # two bytes and then silence, or a close, make the answer
    if len(data) < 2:
        return NoMatch(reason="short reply")
    method = _METHODS.get(data[1], f"method {data[1]:#04x}")
    return Match(service="socks5", extra=method, confidence=8)


SOCKS5 = Matcher(name="socks5", judge=_judge, max_bytes=16)

SOCKS5_GREETING = Probe(
    name="socks5-greeting",
    # Two methods offered (X'00' none, X'02' username/password, RFC 1929): a proxy that
    # insists on a password still answers, and four bytes are told apart from an echo.
    build=lambda host: b"\x05\x02\x00\x02",
    matchers=("socks5",),
    services=("socks", "socks5"),
)


_SOCKS4_REPLIES = {
    0x5A: "request granted",
    0x5B: "request rejected or failed",
    0x5C: "rejected: no identd on the client",
    0x5D: "rejected: identd user mismatch",
}


def _judge4(data: bytes, final: bool) -> Verdict:
    # VN is 0 in the reply; a few servers echo the request's 4 instead.
    if data[:1] not in (b"", b"\x00", b"\x04"):
        return NoMatch(reason="not a SOCKS 4 reply")
    if len(data) >= 2 and data[1] not in _SOCKS4_REPLIES:
        return NoMatch(reason="unknown SOCKS 4 reply code")
    if len(data) > 8:
        return NoMatch(reason="longer than a SOCKS 4 reply")
    if not final:
        return NEED_MORE  # eight bytes and then silence, or a close, make the reply
    if len(data) < 8:
        return NoMatch(reason="short reply")
    return Match(service="socks4", extra=_SOCKS4_REPLIES[data[1]], confidence=8)


SOCKS4 = Matcher(name="socks4", judge=_judge4, max_bytes=16)

SOCKS4_CONNECT = Probe(
    name="socks4-connect",
    # VN=4 CD=1 DSTPORT=0 DSTIP=127.0.0.1 USERID="portkit" NUL: sixteen bytes.
    build=lambda host: b"\x04\x01\x00\x00\x7f\x00\x00\x01portkit\x00",
    matchers=("socks4",),
    services=("socks", "socks4"),
)
