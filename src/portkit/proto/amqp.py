"""AMQP 0-9-1 brokers (RabbitMQ and others) via the protocol header.

AMQP 0-9-1 §4.2.2: the client sends ``AMQP 0 0 9 1``; the server answers with a
Connection.Start method frame (§4.2.3: type 1, channel 0, size, payload, 0xCE; class 10,
method 10) whose server-properties table names the product and version, or, if it speaks
another version, with its own protocol header (AMQP 1.0 brokers answer ``AMQP 0 1 0 0``
or ``AMQP 3 1 0 0``).
"""

from __future__ import annotations

from portkit.proto._match import NEED_MORE, Match, Matcher, NoMatch, Probe, Verdict

__all__ = ["AMQP", "AMQP_HEADER", "field_table"]

HEADER = b"AMQP\x00\x00\x09\x01"
FRAME_METHOD, FRAME_END = 1, 0xCE
MAX_FRAME = 8192

# Sizes of fixed-width field values in a field table (§4.2.5.5, RabbitMQ's errata).
_FIXED = {
    "t": 1,
    "b": 1,
    "B": 1,
    "s": 2,
    "u": 2,
    "U": 2,
    "I": 4,
    "i": 4,
    "l": 8,
    "L": 8,
    "f": 4,
    "d": 8,
    "D": 5,
    "T": 8,
    "V": 0,
}


def field_table(data: bytes) -> dict[str, str]:
    """Return the long-string fields of a field table body (others skipped)."""
    found: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        size = data[pos]
        name = data[pos + 1 : pos + 1 + size].decode("utf-8", "replace")
        pos += 1 + size
        if pos >= len(data):
            break
        kind = chr(data[pos])
        pos += 1
        if kind in _FIXED:
            pos += _FIXED[kind]
        elif kind in ("S", "F", "A", "x"):
            length = int.from_bytes(data[pos : pos + 4], "big")
            if kind == "S":
                found[name] = data[pos + 4 : pos + 4 + length].decode("utf-8", "replace")
            pos += 4 + length
        else:
            break
    return found


def _judge(data: bytes, final: bool) -> Verdict:
    if data.startswith(b"AMQP"[: len(data)]) and len(data) < 8:
        return NEED_MORE
    if data.startswith(b"AMQP"):
        version = ".".join(str(b) for b in data[5:8])
        return Match(service="amqp", extra=f"speaks AMQP {version}", confidence=9)
    if len(data) < 7:
        if data[:1] != b"\x01" or (len(data) >= 3 and data[1:3] != b"\x00\x00"):
            return NoMatch(reason="not a method frame on channel 0")
        return NEED_MORE
    size = int.from_bytes(data[3:7], "big")
    if data[0] != FRAME_METHOD or data[1:3] != b"\x00\x00" or not 4 < size <= MAX_FRAME:
        return NoMatch(reason="not a method frame on channel 0")
    if len(data) < 8 + size:
        return NEED_MORE
    payload = data[7 : 7 + size]
    if data[7 + size] != FRAME_END or payload[:4] != b"\x00\x0a\x00\x0a":
        return NoMatch(reason="not Connection.Start")
    table_size = int.from_bytes(payload[6:10], "big")
    props = field_table(payload[10 : 10 + table_size])
    return Match(
        service="amqp",
        product=props.get("product"),
        version=props.get("version"),
        extra=f"AMQP {payload[4]}-{payload[5]}-1",
    )


AMQP = Matcher(name="amqp", judge=_judge, max_bytes=MAX_FRAME + 8)

AMQP_HEADER = Probe(
    name="amqp-header",
    build=lambda host: HEADER,
    matchers=("amqp",),
    services=("amqp", "amqps"),
)
