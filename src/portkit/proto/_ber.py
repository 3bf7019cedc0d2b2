"""The small part of BER (ITU-T X.690) that LDAP and SNMP messages need.

Definite lengths only (X.690 §8.1.3; LDAP requires them, RFC 4511 §5.1), single-byte
tags. Decoding is bounded and never raises: it returns ``None`` (malformed) or
``INCOMPLETE`` (more bytes needed).
"""

from __future__ import annotations

from typing import Final

__all__ = ["INCOMPLETE", "Tlv", "children", "decode_int", "encode", "read_tlv"]

SEQUENCE, INTEGER, OCTET_STRING, NULL, OID, BOOLEAN, ENUMERATED = 0x30, 2, 4, 5, 6, 1, 10


class _Incomplete:
    pass


INCOMPLETE: Final = _Incomplete()

Tlv = tuple[int, int, int]  # tag, start of contents, end of contents


def encode(tag: int, content: bytes) -> bytes:
    """Return the TLV encoding of ``content`` under ``tag``."""
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + content


def encode_int(value: int) -> bytes:
    """Return a BER INTEGER."""
    size = max(1, (value.bit_length() + 8) // 8)
    return encode(INTEGER, value.to_bytes(size, "big", signed=True))


def read_tlv(data: bytes, pos: int, end: int | None = None) -> Tlv | _Incomplete | None:
    """Read the TLV at ``pos``; ``INCOMPLETE`` if it runs past the data, ``None`` if bad."""
    limit = len(data) if end is None else end
    if pos + 2 > limit:
        return INCOMPLETE if end is None else None
    tag, first = data[pos], data[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4:
            return None  # indefinite or absurd lengths
        if pos + count > limit:
            return INCOMPLETE if end is None else None
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    if pos + length > limit:
        return INCOMPLETE if end is None else None
    return tag, pos, pos + length


def children(data: bytes, start: int, end: int) -> list[Tlv] | None:
    """Split the contents ``data[start:end]`` of a constructed TLV into its elements."""
    found: list[Tlv] = []
    pos = start
    while pos < end:
        tlv = read_tlv(data, pos, end)
        if not isinstance(tlv, tuple):
            return None
        found.append(tlv)
        pos = tlv[2]
        if len(found) > 64:
            return None
    return found


def decode_int(data: bytes, tlv: Tlv) -> int | None:
    """Return the value of an INTEGER/ENUMERATED TLV, ``None`` if it is not one."""
    tag, start, end = tlv
    if tag not in (INTEGER, ENUMERATED) or not 0 < end - start <= 8:
        return None
    return int.from_bytes(data[start:end], "big", signed=True)
