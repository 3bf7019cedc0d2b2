"""MongoDB via the ``isMaster`` handshake and ``buildInfo``.

MongoDB Wire Protocol: every message starts with int32 messageLength, requestID,
responseTo and opCode (little-endian). ``isMaster`` over OP_QUERY (2004) is answered by
every version with OP_REPLY (1) or OP_MSG (2013); ``buildInfo`` over OP_MSG (3.6+)
carries the version. BSON (bsonspec.org) documents: int32 size, elements, 0x00.
"""

from __future__ import annotations

import struct

from portkit.proto._match import NEED_MORE, Match, Matcher, NoMatch, Probe, Verdict

__all__ = ["MONGODB", "MONGODB_HELLO", "bson_fields"]

OP_REPLY, OP_QUERY, OP_MSG = 1, 2004, 2013
ISMASTER_ID, BUILDINFO_ID = 0x706B01, 0x706B02
MAX_MESSAGE = 16384

# Fixed value sizes of BSON element types; strings, documents and binaries are sized.
_FIXED = {
    0x01: 8,
    0x07: 12,
    0x08: 1,
    0x09: 8,
    0x0A: 0,
    0x10: 4,
    0x11: 8,
    0x12: 8,
    0x13: 16,
    0x7F: 0,
    0xFF: 0,
}


def _bson(fields: list[tuple[int, bytes, bytes]]) -> bytes:
    body = b"".join(bytes([kind]) + name + b"\0" + value for kind, name, value in fields)
    return struct.pack("<i", len(body) + 5) + body + b"\0"


def _string(value: bytes) -> bytes:
    return struct.pack("<i", len(value) + 1) + value + b"\0"


def hello_messages() -> bytes:
    """Return OP_QUERY ``isMaster`` followed by OP_MSG ``buildInfo``."""
    query = (
        struct.pack("<i", 0)
        + b"admin.$cmd\0"
        + struct.pack("<ii", 0, -1)
        + _bson([(0x10, b"isMaster", struct.pack("<i", 1))])
    )
    first = struct.pack("<iiii", 16 + len(query), ISMASTER_ID, 0, OP_QUERY) + query
    doc = _bson([(0x10, b"buildInfo", struct.pack("<i", 1)), (0x02, b"$db", _string(b"admin"))])
    msg = struct.pack("<I", 0) + b"\0" + doc
    second = struct.pack("<iiii", 16 + len(msg), BUILDINFO_ID, 0, OP_MSG) + msg
    return first + second


def bson_fields(doc: bytes) -> dict[str, object] | None:
    """Return the top-level fields of a BSON document (strings, numbers, booleans)."""
    if len(doc) < 5:
        return None
    size = int.from_bytes(doc[:4], "little", signed=True)
    if size < 5 or size > len(doc) or doc[size - 1] != 0:
        return None
    fields: dict[str, object] = {}
    pos = 4
    while pos < size - 1:
        kind = doc[pos]
        end = doc.find(b"\0", pos + 1, size)
        if end < 0:
            return None
        name = doc[pos + 1 : end].decode("utf-8", "replace")
        pos = end + 1
        if kind in _FIXED:
            width = _FIXED[kind]
            raw = doc[pos : pos + width]
            if kind == 0x08:
                fields[name] = raw == b"\x01"
            elif kind in (0x10, 0x12):
                fields[name] = int.from_bytes(raw, "little", signed=True)
            pos += width
        elif kind in (0x02, 0x03, 0x04, 0x05, 0x0D, 0x0E):
            length = int.from_bytes(doc[pos : pos + 4], "little", signed=True)
            if length < 0:
                return None
            if kind == 0x02:
                fields[name] = doc[pos + 4 : pos + 4 + length - 1].decode("utf-8", "replace")
                pos += 4 + length
            elif kind == 0x05:
                pos += 5 + length
            elif kind in (0x0D, 0x0E):
                pos += 4 + length
            else:
                fields[name] = {}
                pos += length
        else:
            return None
        if pos > size:
            return None
    return fields


def _message(data: bytes, pos: int) -> tuple[int, int, bytes] | bool | None:
    """Return (responseTo, opCode, body) of the message at ``pos``; True if incomplete."""
    if len(data) < pos + 16:
        return True
    length, _req, response_to, opcode = struct.unpack_from("<iiii", data, pos)
    if not 16 < length <= MAX_MESSAGE or opcode not in (OP_REPLY, OP_MSG):
        return None
    if len(data) < pos + length:
        return True
    return response_to, opcode, data[pos + 16 : pos + length]


def _document(opcode: int, body: bytes) -> dict[str, object] | None:
    if opcode == OP_REPLY:
        return bson_fields(body[20:]) if len(body) > 20 else None
    if len(body) > 5 and body[4] == 0:
        return bson_fields(body[5:])
    return None


def _judge(data: bytes, final: bool) -> Verdict:
    if len(data) >= 16:
        opcode = int.from_bytes(data[12:16], "little", signed=True)
        length = int.from_bytes(data[:4], "little", signed=True)
        if opcode not in (OP_REPLY, OP_MSG) or not 16 < length <= MAX_MESSAGE:
            return NoMatch(reason="not a MongoDB reply")
    first = _message(data, 0)
    if first is True:
        return NEED_MORE
    if not isinstance(first, tuple) or first[0] != ISMASTER_ID:
        return NoMatch(reason="not a reply to isMaster")
    doc = _document(first[1], first[2])
    if doc is None or not ({"ismaster", "isWritablePrimary", "maxWireVersion"} & doc.keys()):
        return NoMatch(reason="reply is not an isMaster document")
    wire = doc.get("maxWireVersion")
    extra = f"wire version {wire}" if isinstance(wire, int) else None
    offset = int.from_bytes(data[:4], "little")
    second = _message(data, offset)
    if second is True:
        if final:
            return Match(service="mongodb", product="MongoDB", extra=extra)
        return NEED_MORE
    version = None
    if isinstance(second, tuple) and second[0] == BUILDINFO_ID:
        info = _document(second[1], second[2]) or {}
        found = info.get("version")
        version = found if isinstance(found, str) else None
    return Match(service="mongodb", product="MongoDB", version=version, extra=extra)


MONGODB = Matcher(name="mongodb", judge=_judge, max_bytes=2 * MAX_MESSAGE)

MONGODB_HELLO = Probe(
    name="mongodb-hello",
    build=lambda host: hello_messages(),
    matchers=("mongodb",),
    services=("mongodb", "mongod"),
)
