"""NTP servers over UDP via a client-mode request (RFC 5905 §7.3).

The request is 48 octets: LI 0, version 4, mode 3 (client) in the first octet and our
transmit timestamp at octets 40-47. A server answers in mode 4 and copies our transmit
timestamp into its origin timestamp (octets 24-31, §8), which proves it answered us.
"""

from __future__ import annotations

from portkit.proto._match import Match, Matcher, NoMatch, Probe, Verdict

__all__ = ["NTP", "NTP_CLIENT"]

PACKET_SIZE = 48
MODE_CLIENT, MODE_SERVER = 3, 4
TRANSMIT = b"portkit\x01"  # an unmistakable transmit timestamp


def client_request() -> bytes:
    """Return an NTPv4 client-mode packet."""
    return bytes([(4 << 3) | MODE_CLIENT]) + bytes(39) + TRANSMIT


def _judge(data: bytes, final: bool) -> Verdict:
    if len(data) < PACKET_SIZE:
        return NoMatch(reason="shorter than an NTP packet")
    version, mode = (data[0] >> 3) & 7, data[0] & 7
    if mode != MODE_SERVER or not 1 <= version <= 4 or data[24:32] != TRANSMIT:
        return NoMatch(reason="not a server reply to our request")
    stratum = data[1]
    refid = data[12:16]
    extra = f"NTPv{version}, stratum {stratum}"
    if stratum in (0, 1) and refid.isascii() and refid.rstrip(b"\0").isalnum():
        extra += f", refid {refid.rstrip(bytes(1)).decode('ascii')}"
    return Match(service="ntp", extra=extra)


NTP = Matcher(name="ntp", judge=_judge, max_bytes=1024)

NTP_CLIENT = Probe(
    name="ntp-client",
    build=lambda host: client_request(),
    matchers=("ntp",),
    services=("ntp",),
    transport="udp",
)
