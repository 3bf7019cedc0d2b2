"""Cassandra (and ScyllaDB) CQL servers, via an OPTIONS request (native protocol v4).

native_protocol_v4.spec §2: a frame is a 9-byte header (version with the response bit
0x80, flags, 16-bit stream, opcode, 32-bit body length) and a body. §4.1.3 OPTIONS
(opcode 0x05) has no body; §4.2.4 SUPPORTED (0x06) answers with a string multimap
(``CQL_VERSION``, ``COMPRESSION``, ...). A server that does not speak v4 answers ERROR
(0x00) in its own version (§8), which still names CQL.
"""

from __future__ import annotations

from portkit.proto._match import NEED_MORE, Match, Matcher, NoMatch, Probe, Verdict

__all__ = ["CASSANDRA", "CQL_OPTIONS"]

STREAM = b"\x70\x6b"
_SUPPORTED, _ERROR = 0x06, 0x00


def _strings(body: bytes) -> dict[str, list[str]]:
    """Decode a [string multimap] (§3): n, then n (key, [string list]) pairs."""
    found: dict[str, list[str]] = {}
    pos = 2
    for _ in range(int.from_bytes(body[:2], "big")):
        if pos >= len(body):
            break  # the count promised more than the body holds
        key_len = int.from_bytes(body[pos : pos + 2], "big")
        key = body[pos + 2 : pos + 2 + key_len].decode("utf-8", "replace")
        pos += 2 + key_len
        values = []
        for _ in range(int.from_bytes(body[pos : pos + 2], "big")):
            size = int.from_bytes(body[pos + 2 : pos + 4], "big")
            values.append(body[pos + 4 : pos + 4 + size].decode("utf-8", "replace"))
            pos += 2 + size
        pos += 2
        found[key] = values
    return found


def _judge(data: bytes, final: bool) -> Verdict:
    if data and (not data[0] & 0x80 or not 1 <= data[0] & 0x7F <= 6):
        return NoMatch(reason="not a response frame")
    if len(data) < 9:
        return NoMatch(reason="short header") if final else NEED_MORE
    if data[4] not in (_SUPPORTED, _ERROR):
        return NoMatch(reason="not SUPPORTED or ERROR")
    length = int.from_bytes(data[5:9], "big")
    if length > 8192:
        return NoMatch(reason="body too long")
    if len(data) < 9 + length:
        return NoMatch(reason="short body") if final else NEED_MORE
    body = data[9 : 9 + length]
    version = data[0] & 0x7F
    if data[4] == _ERROR:
        # Servers older than v4 answer in their own version, on stream 0 or ours.
        if length < 6:
            return NoMatch(reason="short error")
        return Match(service="cassandra", extra=f"native protocol v{version}; error")
    if data[2:4] != STREAM:
        return NoMatch(reason="another stream")
    options = _strings(body)
    cql = options.get("CQL_VERSION")
    if not cql:
        return NoMatch(reason="no CQL_VERSION")
    product = "ScyllaDB" if any(k.startswith("SCYLLA") for k in options) else None
    return Match(service="cassandra", product=product, extra=f"CQL {', '.join(cql[:3])}")


CASSANDRA = Matcher(name="cassandra", judge=_judge, max_bytes=8192 + 9)

CQL_OPTIONS = Probe(
    name="cql-options",
    build=lambda host: b"\x04\x00" + STREAM + b"\x05\x00\x00\x00\x00",
    matchers=("cassandra",),
    services=("cassandra", "cql"),
)
