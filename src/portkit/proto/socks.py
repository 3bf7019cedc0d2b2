"""SOCKS proxies (version 5), via the method-selection greeting.

RFC 1928 §3: the client sends VER=5, NMETHODS and the methods it offers (here X'00', no
authentication required, and X'02', username/password); the server answers with exactly two bytes, VER=5 and
the METHOD it selects (X'00', X'02' username/password (RFC 1929), ..., or X'FF' "no
acceptable methods"), and then waits for a request. Nothing is connected anywhere.
"""

from __future__ import annotations

from portkit.proto._match import NEED_MORE, Match, Matcher, NoMatch, Probe, Verdict

__all__ = ["SOCKS5", "SOCKS5_GREETING"]

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
