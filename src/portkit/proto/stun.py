"""STUN and TURN servers, via a Binding request (RFC 8489).

§5: a message is a 20-byte header (two zero bits, the message type, the length of the
attributes, the magic cookie 0x2112A442 and a 96-bit transaction ID) and attributes
(type, length, value padded to 4 bytes). A Binding request (type 0x0001) with no
attributes is answered by a success (0x0101) or error (0x0111) response carrying the
same transaction ID; the SOFTWARE attribute (0x8022, §14.14) names the server.
"""

from __future__ import annotations

import re

from portkit.proto._match import Match, Matcher, NoMatch, Probe, Verdict

__all__ = ["STUN", "STUN_BINDING"]

MAGIC = b"\x21\x12\xa4\x42"
TRANSACTION = b"portkit-stun"  # 12 bytes, fixed so the answer can be checked
SOFTWARE = 0x8022

_PRODUCT = re.compile(r"^([A-Za-z][\w .]*?)[-/ ]v?(\d[\w.]*)(?:\s+(.*))?$")


def _judge(data: bytes, final: bool) -> Verdict:
    if len(data) < 20 or data[4:8] != MAGIC:
        return NoMatch(reason="not a STUN message")
    kind = data[0:2]
    if kind not in (b"\x01\x01", b"\x01\x11"):
        return NoMatch(reason="not a Binding response")
    if data[8:20] != TRANSACTION:
        return NoMatch(reason="another transaction")
    length = int.from_bytes(data[2:4], "big")
    if length % 4 or len(data) != 20 + length:
        return NoMatch(reason="bad length")
    product = version = extra = None
    pos = 20
    while pos + 4 <= len(data):
        attr = int.from_bytes(data[pos : pos + 2], "big")
        size = int.from_bytes(data[pos + 2 : pos + 4], "big")
        value = data[pos + 4 : pos + 4 + size]
        if attr == SOFTWARE:
            software = value.decode("utf-8", "replace").strip()
            found = _PRODUCT.match(software)
            product, version = (found.group(1), found.group(2)) if found else (software, None)
            extra = found.group(3) if found and found.group(3) else None
        pos += 4 + (size + 3) // 4 * 4
    status = "binding error" if kind == b"\x01\x11" else None
    extra = "; ".join(x for x in (status, extra) if x) or None
    return Match(service="stun", product=product, version=version, extra=extra)


STUN = Matcher(name="stun", judge=_judge, max_bytes=2048)

STUN_BINDING = Probe(
    name="stun-binding",
    build=lambda host: b"\x00\x01\x00\x00" + MAGIC + TRANSACTION,
    matchers=("stun",),
    services=("stun", "turn", "stuns", "turns", "stun-behavior"),
    transport="udp",
)
