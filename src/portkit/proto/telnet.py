"""Telnet servers, recognised by the option negotiation they open with.

RFC 854: ``IAC`` (255) introduces commands; ``WILL``/``WONT``/``DO``/``DONT`` (251-254)
take one option byte, ``SB`` (250) opens a subnegotiation closed by ``IAC SE`` (240).
Telnet daemons start by negotiating (RFC 1091 terminal type, RFC 1079 speed, ...), so a
server that opens with a well-formed run of negotiations is Telnet.
"""

from __future__ import annotations

from portkit.proto._match import NEED_MORE, Match, Matcher, NoMatch, Verdict

__all__ = ["TELNET", "negotiations"]

IAC = 255
DONT, DO, WONT, WILL, SB = 254, 253, 252, 251, 250
SE = 240
MAX_BYTES = 512

# Opening sequences of known daemons (after which they wait for our answers).
_DAEMONS: dict[tuple[tuple[int, int], ...], str] = {
    # DO TTYPE, DO TSPEED, DO XDISPLOC, DO NEW-ENVIRON: netkit and GNU inetutils telnetd.
    ((DO, 24), (DO, 32), (DO, 35), (DO, 39)): "Linux telnetd",
    # WILL AUTHENTICATION, WILL ENCRYPT first: GNU inetutils telnetd built with them.
    ((WILL, 37), (WILL, 38), (DO, 24), (DO, 32)): "GNU inetutils telnetd",
}


def negotiations(data: bytes) -> tuple[list[tuple[int, int]], int] | None:
    """Parse leading negotiations; return them and the offset after, ``None`` if bad."""
    found: list[tuple[int, int]] = []
    i = 0
    while i < len(data) and data[i] == IAC:
        if i + 1 >= len(data):
            break
        command = data[i + 1]
        if command in (DONT, DO, WONT, WILL):
            if i + 2 >= len(data):
                break
            found.append((command, data[i + 2]))
            i += 3
        elif command == SB:
            end = data.find(bytes([IAC, SE]), i + 2)
            if end < 0:
                break
            i = end + 2
        elif SE <= command < SB:
            i += 2
        else:
            return None
    return found, i


def _judge(data: bytes, final: bool) -> Verdict:
    if not data:
        return NEED_MORE
    if data[0] != IAC:
        return NoMatch(reason="does not open with IAC")
    if len(data) >= 2 and not SE <= data[1] <= DONT:
        return NoMatch(reason="IAC followed by a non-command")
    parsed = negotiations(data)
    if parsed is None:
        return NoMatch(reason="malformed negotiation")
    found, end = parsed
    rest = data[end:]
    # Name the daemon from its first four negotiations; with fewer, wait for more unless
    # the stream ended or text (a banner, a login prompt) follows them.
    if len(found) < 4 and not final and (not rest or rest[0] == IAC):
        return NEED_MORE
    if not found:
        return NoMatch(reason="no negotiation")
    product = _DAEMONS.get(tuple(found[:4]))
    # The product comes from the shape of the opening, not from words: a little less sure.
    return Match(service="telnet", product=product, confidence=10 if product is None else 9)


TELNET = Matcher(name="telnet", judge=_judge, max_bytes=MAX_BYTES)
