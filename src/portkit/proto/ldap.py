"""LDAP servers via a search of the root DSE (RFC 4511 §4.5, RFC 4512 §5.1).

LDAPMessage (RFC 4511 §4.1.1) is ``SEQUENCE { messageID INTEGER, protocolOp, ... }``.
Any LDAPMessage answering our id (or the unsolicited notice, id 0, §4.4) is LDAP. The
root DSE's ``vendorName``/``vendorVersion`` (RFC 3045) name the product when published;
OpenLDAP marks its root DSE with the object class ``OpenLDAProotDSE``.
"""

from __future__ import annotations

from portkit.proto._ber import (
    BOOLEAN,
    ENUMERATED,
    INCOMPLETE,
    OCTET_STRING,
    SEQUENCE,
    children,
    decode_int,
    encode,
    encode_int,
    read_tlv,
)
from portkit.proto._match import NEED_MORE, Match, Matcher, NoMatch, Probe, Verdict

__all__ = ["LDAP", "LDAP_ROOTDSE"]

MESSAGE_ID = 1
SEARCH_REQUEST, SEARCH_ENTRY, SEARCH_DONE = 0x63, 0x64, 0x65
BIND_RESPONSE, EXTENDED_RESPONSE = 0x61, 0x78
FILTER_PRESENT = 0x87
MAX_MESSAGE = 8192
_ATTRIBUTES = (b"vendorName", b"vendorVersion", b"objectClass")


def rootdse_search() -> bytes:
    """Return a base-scope search of the root DSE for the vendor attributes."""
    request = encode(
        SEARCH_REQUEST,
        encode(OCTET_STRING, b"")
        + encode(ENUMERATED, b"\x00")  # baseObject
        + encode(ENUMERATED, b"\x00")  # neverDerefAliases
        + encode_int(0)
        + encode_int(0)
        + encode(BOOLEAN, b"\x00")
        + encode(FILTER_PRESENT, b"objectClass")
        + encode(SEQUENCE, b"".join(encode(OCTET_STRING, a) for a in _ATTRIBUTES)),
    )
    return encode(SEQUENCE, encode_int(MESSAGE_ID) + request)


def _attributes(data: bytes, start: int, end: int) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    parts = children(data, start, end)
    if not parts or len(parts) < 2:
        return found
    for attr in children(data, parts[1][1], parts[1][2]) or []:
        pair = children(data, attr[1], attr[2])
        if not pair or len(pair) != 2:
            continue
        name = data[pair[0][1] : pair[0][2]].decode("utf-8", "replace")
        values = children(data, pair[1][1], pair[1][2]) or []
        found[name.lower()] = [data[v[1] : v[2]].decode("utf-8", "replace") for v in values]
    return found


def _judge(data: bytes, final: bool) -> Verdict:
    if data and data[0] != SEQUENCE:
        return NoMatch(reason="not a BER SEQUENCE")
    outer = read_tlv(data, 0)
    if outer is INCOMPLETE:
        return NEED_MORE
    if not isinstance(outer, tuple) or outer[2] - outer[1] > MAX_MESSAGE:
        return NoMatch(reason="malformed LDAPMessage")
    parts = children(data, outer[1], outer[2])
    if not parts or len(parts) < 2:
        return NoMatch(reason="malformed LDAPMessage")
    message_id = decode_int(data, parts[0])
    op = parts[1][0]
    if message_id not in (0, MESSAGE_ID) or op not in (
        SEARCH_ENTRY,
        SEARCH_DONE,
        BIND_RESPONSE,
        EXTENDED_RESPONSE,
    ):
        return NoMatch(reason="not an LDAP response to our request")
    if op != SEARCH_ENTRY:
        return Match(service="ldap", extra="root DSE not readable", confidence=9)
    attrs = _attributes(data, parts[1][1], parts[1][2])
    product = next(iter(attrs.get("vendorname", [])), None)
    version = next(iter(attrs.get("vendorversion", [])), None)
    if product is None and "OpenLDAProotDSE" in attrs.get("objectclass", []):
        product = "OpenLDAP"
    return Match(service="ldap", product=product, version=version)


LDAP = Matcher(name="ldap", judge=_judge, max_bytes=MAX_MESSAGE + 8)

LDAP_ROOTDSE = Probe(
    name="ldap-rootdse",
    build=lambda host: rootdse_search(),
    matchers=("ldap",),
    services=("ldap", "ldaps"),
)
