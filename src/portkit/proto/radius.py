"""RADIUS servers (RFC 2865), via an Access-Request they can only refuse.

§3: a packet is Code, Identifier, Length (20-4096), a 16-byte Authenticator and
attributes (type, length, value). §4.1: an Access-Request carries User-Name, a
User-Password and NAS-Identifier. A server that knows our address as a client answers
Access-Reject (3), Access-Accept (2) or Access-Challenge (11) with our Identifier; one
that does not know us stays silent (§4.1: "silently discarded"), which is honest silence.
A reject may come late: FreeRADIUS holds it back for ``reject_delay`` (1 s by default)
to slow down password guessing, so the probe waits longer than most.
"""

from __future__ import annotations

from portkit.proto._match import Match, Matcher, NoMatch, Probe, Verdict

__all__ = ["RADIUS", "RADIUS_ACCESS_REQUEST"]

IDENTIFIER = 0x70
_CODES = {2: "Access-Accept", 3: "Access-Reject", 11: "Access-Challenge"}


def _attribute(kind: int, value: bytes) -> bytes:
    return bytes([kind, len(value) + 2]) + value


def _request(host: str) -> bytes:
    # User-Name (1), User-Password (2: 16 octets, meaningless without the shared secret),
    # NAS-Identifier (32).
    attrs = (
        _attribute(1, b"portkit") + _attribute(2, b"portkit-probe-pw") + _attribute(32, b"portkit")
    )
    length = 20 + len(attrs)
    return bytes([1, IDENTIFIER]) + length.to_bytes(2, "big") + b"portkit-radius-a" + attrs


def _judge(data: bytes, final: bool) -> Verdict:
    if len(data) < 20 or data[0] not in _CODES or data[1] != IDENTIFIER:
        return NoMatch(reason="not an answer to our Access-Request")
    length = int.from_bytes(data[2:4], "big")
    if not 20 <= length <= 4096 or length != len(data):
        return NoMatch(reason="length disagrees")
    pos = 20
    while pos < length:
        if pos + 2 > length or data[pos + 1] < 2 or pos + data[pos + 1] > length:
            return NoMatch(reason="broken attribute")
        pos += data[pos + 1]
    return Match(service="radius", extra=_CODES[data[0]])


RADIUS = Matcher(name="radius", judge=_judge, max_bytes=4096)

RADIUS_ACCESS_REQUEST = Probe(
    name="radius-access-request",
    build=_request,
    matchers=("radius",),
    services=("radius", "radius-acct", "sa-msg-port"),
    transport="udp",
    wait=1.6,
)
