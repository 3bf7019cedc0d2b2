"""UDP probe payloads: the smallest request each service answers.

A UDP service replies only to a datagram it understands; an empty datagram gets silence
from a DNS or NTP server, which would read as open|filtered. Ports without a payload
here get an empty datagram (enough for echo-like services and for ICMP
port-unreachable, which tells closed ports apart).
"""

from __future__ import annotations

from functools import cache

__all__ = ["payloads"]


def _ber(tag: int, content: bytes) -> bytes:
    """One BER element (X.690 section 8.1): tag, definite length, content."""
    length = len(content)
    if length < 0x80:
        return bytes([tag, length]) + content
    size = (length.bit_length() + 7) // 8
    return bytes([tag, 0x80 | size]) + length.to_bytes(size, "big") + content


def _dns_query() -> bytes:
    # RFC 1035 section 4.1: a standard query; any DNS server answers it (even REFUSED is
    # an answer). dnspython builds the message; a fixed ID keeps scans reproducible.
    import dns.message
    import dns.rdatatype

    query = dns.message.make_query(".", dns.rdatatype.NS)
    query.id = 0x706B  # "pk"
    return query.to_wire()


# RFC 5905 section 7.3: LI=0, VN=4, Mode=3 (client) in the first octet, the rest zero.
NTP_CLIENT_REQUEST = bytes([0b00_100_011]) + bytes(47)


def _snmp_get() -> bytes:
    # RFC 1157 section 4.1 / RFC 3416 section 3: an SNMPv1 GetRequest, community
    # "public", for sysDescr.0 (1.3.6.1.2.1.1.1.0).
    sys_descr = bytes([0x2B, 6, 1, 2, 1, 1, 1, 0])
    varbind = _ber(0x30, _ber(0x06, sys_descr) + _ber(0x05, b""))
    pdu = _ber(
        0xA0,
        _ber(0x02, b"\x70\x6b")  # request-id
        + _ber(0x02, b"\x00")  # error-status
        + _ber(0x02, b"\x00")  # error-index
        + _ber(0x30, varbind),
    )
    return _ber(0x30, _ber(0x02, b"\x00") + _ber(0x04, b"public") + pdu)


# memcached protocol.txt, "UDP protocol": an 8-byte frame header, then a text command.
MEMCACHED_STATS = b"\x00\x01\x00\x00\x00\x01\x00\x00stats\r\n"


@cache
def payloads() -> dict[int, bytes]:
    """Return the probe payload for each UDP port that needs one."""
    dns = _dns_query()
    return {
        53: dns,
        5353: dns,
        123: NTP_CLIENT_REQUEST,
        161: _snmp_get(),
        11211: MEMCACHED_STATS,
    }
