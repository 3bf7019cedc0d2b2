"""QUIC servers (RFC 9000), via a packet in a version no one speaks.

§6 and §17.2.1: a server that receives a long-header packet of a version it does not
support, in a datagram of at least 1200 bytes (§14.1), answers with a Version
Negotiation packet: the long-header bit set, version 0, the connection IDs swapped (its
Destination Connection ID is our Source one) and the versions it supports. Versions of
the form 0x?a?a?a?a are reserved to force this (§15).
"""

from __future__ import annotations

from portkit.proto._match import Match, Matcher, NoMatch, Probe, Verdict

__all__ = ["QUIC", "QUIC_VERSION_PROBE"]

DCID = b"portkit-dcid"
SCID = b"portkit-scid"
_RESERVED = b"\x1a\x2a\x3a\x4a"
_NAMES = {0x00000001: "v1", 0x6B3343CF: "v2", 0xFF00001D: "draft-29", 0x51303530: "Q050",
          0x54303530: "T050", 0x51303436: "Q046"}  # fmt: skip


def _packet(host: str) -> bytes:
    # Long header, fixed bit, type Initial; then version, the two connection IDs, and
    # padding up to the 1200 bytes a server insists on.
    head = b"\xc0" + _RESERVED + bytes([len(DCID)]) + DCID + bytes([len(SCID)]) + SCID
    return head + bytes(1200 - len(head))


def _judge(data: bytes, final: bool) -> Verdict:
    if len(data) < 7 or not data[0] & 0x80 or data[1:5] != bytes(4):
        return NoMatch(reason="not a Version Negotiation packet")
    pos = 5
    dcid_len = data[pos]
    dcid = data[pos + 1 : pos + 1 + dcid_len]
    pos += 1 + dcid_len
    if pos >= len(data):
        return NoMatch(reason="truncated")
    scid_len = data[pos]
    scid = data[pos + 1 : pos + 1 + scid_len]
    pos += 1 + scid_len
    if dcid != SCID or scid != DCID:
        return NoMatch(reason="not an answer to our packet")
    listed = data[pos:]
    if not listed or len(listed) % 4:
        return NoMatch(reason="no version list")
    versions = [int.from_bytes(listed[i : i + 4], "big") for i in range(0, len(listed), 4)]
    names = [_NAMES.get(v, f"{v:#010x}") for v in versions if v & 0x0F0F0F0F != 0x0A0A0A0A]
    return Match(service="quic", extra=f"versions {', '.join(names[:6])}")


QUIC = Matcher(name="quic", judge=_judge, max_bytes=1500)

QUIC_VERSION_PROBE = Probe(
    name="quic-version-negotiation",
    build=_packet,
    matchers=("quic",),
    services=("https", "quic", "http3"),
    transport="udp",
)
