"""SNMP agents over UDP: an SNMPv3 engine discovery and an SNMPv2c ``sysDescr`` query.

RFC 3412 §6 (SNMPv3 message), RFC 3414 §4 (discovery: an unauthenticated request with
an empty engine ID draws a Report carrying the agent's engine ID), RFC 3411 §5
(SnmpEngineID: the first four octets are the vendor's enterprise number with the high bit
set). RFC 3416 §3 (PDUs: GetRequest 0xA0, Response 0xA2, Report 0xA8); RFC 1905 for v2c.
"""

from __future__ import annotations

from portkit.proto._ber import (
    INCOMPLETE,
    NULL,
    OCTET_STRING,
    SEQUENCE,
    children,
    decode_int,
    encode,
    encode_int,
    read_tlv,
)
from portkit.proto._match import Match, Matcher, NoMatch, Probe, Verdict

__all__ = ["SNMP", "SNMP_V2C_SYSDESCR", "SNMP_V3_DISCOVERY"]

GET_REQUEST, RESPONSE, REPORT = 0xA0, 0xA2, 0xA8
REQUEST_ID = 0x706B
MAX_MESSAGE = 4096
SYSDESCR_OID = bytes([0x2B, 6, 1, 2, 1, 1, 1, 0])  # 1.3.6.1.2.1.1.1.0
OID = 0x06

# IANA private enterprise numbers seen in engine IDs.
_ENTERPRISES = {
    8072: "net-snmp",
    2021: "net-snmp",
    9: "Cisco SNMP",
    311: "Microsoft SNMP",
    2636: "Juniper SNMP",
    4413: "Broadcom SNMP",
    14988: "MikroTik SNMP",
}


def v3_discovery() -> bytes:
    """Return an SNMPv3 GetRequest with empty engine ID and user (RFC 3414 §4)."""
    header = encode(
        SEQUENCE,
        encode_int(REQUEST_ID) + encode_int(65507) + encode(OCTET_STRING, b"\x04") + encode_int(3),
    )
    usm = encode(
        SEQUENCE,
        encode(OCTET_STRING, b"") + encode_int(0) + encode_int(0) + encode(OCTET_STRING, b"") * 3,
    )
    pdu = encode(
        GET_REQUEST, encode_int(REQUEST_ID) + encode_int(0) + encode_int(0) + encode(SEQUENCE, b"")
    )
    scoped = encode(SEQUENCE, encode(OCTET_STRING, b"") * 2 + pdu)
    return encode(SEQUENCE, encode_int(3) + header + encode(OCTET_STRING, usm) + scoped)


def v2c_sysdescr(community: bytes = b"public") -> bytes:
    """Return an SNMPv2c GetRequest for ``sysDescr.0``."""
    varbind = encode(SEQUENCE, encode(OID, SYSDESCR_OID) + encode(NULL, b""))
    pdu = encode(
        GET_REQUEST,
        encode_int(REQUEST_ID) + encode_int(0) + encode_int(0) + encode(SEQUENCE, varbind),
    )
    return encode(SEQUENCE, encode_int(1) + encode(OCTET_STRING, community) + pdu)


def _v3(data: bytes, parts: list[tuple[int, int, int]]) -> Verdict:
    if len(parts) != 4 or parts[2][0] != OCTET_STRING:
        return NoMatch(reason="malformed SNMPv3 message")
    header = children(data, parts[1][1], parts[1][2])
    if not header or decode_int(data, header[0]) != REQUEST_ID:
        return NoMatch(reason="not a reply to our message id")
    usm_outer = read_tlv(data, parts[2][1], parts[2][2])
    usm = children(data, usm_outer[1], usm_outer[2]) if isinstance(usm_outer, tuple) else None
    if not usm:
        return NoMatch(reason="malformed security parameters")
    engine = data[usm[0][1] : usm[0][2]]
    product = None
    if len(engine) >= 5 and engine[0] & 0x80:
        enterprise = int.from_bytes(engine[:4], "big") & 0x7FFFFFFF
        product = _ENTERPRISES.get(enterprise, f"enterprise {enterprise}")
    return Match(service="snmp", product=product, extra=f"SNMPv3 engine {engine.hex()}")


def _judge(data: bytes, final: bool) -> Verdict:
    outer = read_tlv(data, 0)
    if outer is INCOMPLETE or not isinstance(outer, tuple) or data[0] != SEQUENCE:
        return NoMatch(reason="not a BER SEQUENCE")
    parts = children(data, outer[1], outer[2])
    if not parts:
        return NoMatch(reason="malformed SNMP message")
    version = decode_int(data, parts[0])
    if version == 3:
        return _v3(data, parts)
    if version not in (0, 1) or len(parts) != 3 or parts[2][0] not in (RESPONSE, REPORT):
        return NoMatch(reason="not an SNMP response")
    pdu = children(data, parts[2][1], parts[2][2])
    if not pdu or len(pdu) != 4 or decode_int(data, pdu[0]) != REQUEST_ID:
        return NoMatch(reason="not a reply to our request id")
    descr = None
    for varbind in children(data, pdu[3][1], pdu[3][2]) or []:
        pair = children(data, varbind[1], varbind[2])
        if pair and len(pair) == 2 and pair[1][0] == OCTET_STRING:
            descr = data[pair[1][1] : pair[1][2]].decode("utf-8", "replace")
    label = "SNMPv2c" if version == 1 else "SNMPv1"
    extra = f"{label}; sysDescr: {descr[:120]}" if descr else label
    return Match(service="snmp", extra=extra)


SNMP = Matcher(name="snmp", judge=_judge, max_bytes=MAX_MESSAGE)

SNMP_V3_DISCOVERY = Probe(
    name="snmp-v3-discovery",
    build=lambda host: v3_discovery(),
    matchers=("snmp",),
    services=("snmp",),
    transport="udp",
)
SNMP_V2C_SYSDESCR = Probe(
    name="snmp-v2c-sysdescr",
    build=lambda host: v2c_sysdescr(),
    matchers=("snmp",),
    services=("snmp",),
    transport="udp",
)
