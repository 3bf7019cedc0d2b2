"""OpenVPN over TCP, via the first packet of a TLS-mode session.

OpenVPN's wire protocol (``doc/doxygen/doc_protocol_overview.h`` and ``ssl_pkt.h`` in
its sources): over TCP every packet is preceded by a 16-bit length. A control packet
starts with one byte holding the opcode (high five bits) and key ID (low three), then
the sender's 8-byte session ID, an array of acknowledged packet IDs (a count byte, the
32-bit IDs and, if any, the peer's session ID), and the 32-bit packet ID. The client
opens with P_CONTROL_HARD_RESET_CLIENT_V2 (opcode 7); a server without ``tls-auth`` or
``tls-crypt`` answers P_CONTROL_HARD_RESET_SERVER_V2 (opcode 8) acknowledging our packet
0 and naming our session ID. A server with them drops our unsigned packet: silence.
"""

from __future__ import annotations

from portkit.proto._match import NEED_MORE, Match, Matcher, NoMatch, Probe, Verdict

__all__ = ["OPENVPN", "OPENVPN_RESET"]

SESSION = b"portkit!"
_CLIENT_RESET_V2 = 7
_SERVER_RESET_V2 = 8


def _judge(data: bytes, final: bool) -> Verdict:
    if len(data) >= 3 and data[2] >> 3 != _SERVER_RESET_V2:
        return NoMatch(reason="not a server hard reset")
    if len(data) < 2:
        return NoMatch(reason="short") if final else NEED_MORE
    length = int.from_bytes(data[:2], "big")
    if not 14 <= length <= 1600:
        return NoMatch(reason="bad packet length")
    if len(data) < 2 + length:
        return NoMatch(reason="short packet") if final else NEED_MORE
    packet = data[2 : 2 + length]
    acks = packet[9]
    end = 10 + 4 * acks
    if acks == 0 or len(packet) < end + 8 + 4:
        return NoMatch(reason="our packet is not acknowledged")
    if packet[end : end + 8] != SESSION:
        return NoMatch(reason="another session")
    return Match(service="openvpn", extra="TLS mode, no tls-auth")


OPENVPN = Matcher(name="openvpn", judge=_judge, max_bytes=1602)

OPENVPN_RESET = Probe(
    name="openvpn-reset",
    # Length 14: opcode 7 / key 0, our session ID, no acknowledgements, packet ID 0.
    build=lambda host: b"\x00\x0e" + bytes([_CLIENT_RESET_V2 << 3]) + SESSION + bytes(5),
    matchers=("openvpn",),
    services=("openvpn",),
)
