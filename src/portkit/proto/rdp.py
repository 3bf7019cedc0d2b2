"""RDP servers via an X.224 Connection Request with an RDP Negotiation Request.

[MS-RDPBCGR] §2.2.1.1: TPKT header (RFC 1006 §6: version 3, reserved, length), X.224
Connection Request (ITU-T X.224 §13.3: length indicator, code 0xE0), then
RDP_NEG_REQ (type 1, requesting TLS and CredSSP). The server answers with an X.224
Connection Confirm (code 0xD0), optionally carrying RDP_NEG_RSP (type 2) or
RDP_NEG_FAILURE (type 3) (§2.2.1.2).
"""

from __future__ import annotations

from portkit.proto._match import NEED_MORE, Match, Matcher, NoMatch, Probe, Verdict

__all__ = ["RDP", "RDP_NEGOTIATE"]

CONNECTION_CONFIRM = 0xD0
NEG_RESPONSE, NEG_FAILURE = 2, 3
_PROTOCOLS = {0: "standard RDP security", 1: "TLS", 2: "CredSSP", 8: "CredSSP early auth"}


def connection_request() -> bytes:
    """Return TPKT + X.224 CR + RDP_NEG_REQ (PROTOCOL_SSL | PROTOCOL_HYBRID)."""
    neg_req = bytes([1, 0, 8, 0]) + (3).to_bytes(4, "little")
    x224 = bytes([6 + len(neg_req), 0xE0, 0, 0, 0, 0, 0]) + neg_req
    return bytes([3, 0]) + (4 + len(x224)).to_bytes(2, "big") + x224


def _judge(data: bytes, final: bool) -> Verdict:
    if not b"\x03\x00".startswith(data[:2]):
        return NoMatch(reason="not a TPKT header")
    if len(data) < 6:
        return NEED_MORE
    length = int.from_bytes(data[2:4], "big")
    if not 11 <= length <= 512 or data[5] != CONNECTION_CONFIRM or data[4] + 5 > length:
        return NoMatch(reason="not an X.224 Connection Confirm")
    if len(data) < length:
        return NEED_MORE
    extra = None
    if length >= 19:
        kind = data[11]
        selected = int.from_bytes(data[15:19], "little")
        if kind == NEG_RESPONSE:
            extra = f"selected {_PROTOCOLS.get(selected, hex(selected))}"
        elif kind == NEG_FAILURE:
            extra = f"negotiation failure {selected}"
    return Match(service="ms-wbt-server", extra=extra)


RDP = Matcher(name="rdp", judge=_judge, max_bytes=512)

RDP_NEGOTIATE = Probe(
    name="rdp-negotiate",
    build=lambda host: connection_request(),
    matchers=("rdp",),
    services=("ms-wbt-server", "rdp"),
)
