"""MQTT brokers via a CONNECT packet (MQTT 3.1.1, OASIS standard §3.1 and §3.2).

A v3.1.1 CONNECT with a clean session draws a CONNACK: fixed header 0x20, remaining
length 2, acknowledge flags (0 or 1) and a return code 0-5 (§3.2.2.3). Brokers speaking
MQTT 5 accept 3.1.1 clients too.
"""

from __future__ import annotations

from portkit.proto._match import NEED_MORE, Match, Matcher, NoMatch, Probe, Verdict

__all__ = ["MQTT", "MQTT_CONNECT"]

CONNACK = 0x20
_RETURN_CODES = {
    0: "accepted",
    1: "unacceptable protocol version",
    2: "identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorized",
}


def connect_packet(client_id: bytes = b"portkit") -> bytes:
    """Return a CONNECT packet: protocol "MQTT" level 4, clean session, keep-alive 60."""
    variable = b"\x00\x04MQTT\x04\x02\x00\x3c"
    payload = len(client_id).to_bytes(2, "big") + client_id
    remaining = len(variable) + len(payload)
    return bytes([0x10, remaining]) + variable + payload


def _judge(data: bytes, final: bool) -> Verdict:
    expected = bytes([CONNACK, 2])
    if not data.startswith(expected[: len(data)]):
        return NoMatch(reason="not a CONNACK")
    if len(data) < 4:
        return NEED_MORE
    flags, code = data[2], data[3]
    if flags > 1 or code not in _RETURN_CODES:
        return NoMatch(reason="malformed CONNACK")
    return Match(service="mqtt", extra=f"connection {_RETURN_CODES[code]}")


MQTT = Matcher(name="mqtt", judge=_judge, max_bytes=16)

MQTT_CONNECT = Probe(
    name="mqtt-connect",
    build=lambda host: connect_packet(),
    matchers=("mqtt",),
    services=("mqtt", "secure-mqtt", "mqtts"),
)
