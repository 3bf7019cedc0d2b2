"""TLS servers, recognised from the raw records they answer a ClientHello with.

The handshake itself is done by Python's :mod:`ssl`; this matcher tells a TLS server that
refused our hello (an alert) from something that is not TLS at all.
RFC 8446 §5.1: a record is type (1 byte), legacy version (2), length (2, at most
2^14 + 256 for ciphertext); handshake type 2 is ServerHello (§4), alert records carry
level and description (§6).
"""

from __future__ import annotations

from portkit.proto._match import NEED_MORE, Match, Matcher, NoMatch, Verdict

__all__ = ["TLS_RECORDS"]

CHANGE_CIPHER_SPEC, ALERT, HANDSHAKE = 20, 21, 22
SERVER_HELLO = 2
MAX_RECORD = 2**14 + 2048
# RFC 8446 §6: the alert descriptions a server sends when it rejects a hello.
ALERTS = {
    40: "handshake_failure",
    42: "bad_certificate",
    47: "illegal_parameter",
    50: "decode_error",
    70: "protocol_version",
    71: "insufficient_security",
    80: "internal_error",
    86: "inappropriate_fallback",
    112: "unrecognized_name",
    120: "no_application_protocol",
}
_VERSIONS = {0: "SSLv3", 1: "TLSv1.0", 2: "TLSv1.1", 3: "TLSv1.2", 4: "TLSv1.3"}


def _judge(data: bytes, final: bool) -> Verdict:
    if len(data) < 5:
        if data and data[0] not in (ALERT, HANDSHAKE):
            return NoMatch(reason="not a TLS record type")
        if len(data) >= 2 and data[1] != 3:
            return NoMatch(reason="not a TLS record version")
        return NEED_MORE
    kind, major, minor = data[0], data[1], data[2]
    length = int.from_bytes(data[3:5], "big")
    if kind not in (ALERT, HANDSHAKE) or major != 3 or minor > 4 or not 0 < length <= MAX_RECORD:
        return NoMatch(reason="not a TLS record")
    if len(data) < 7:
        return NEED_MORE
    if kind == ALERT:
        if length != 2 or data[5] not in (1, 2):
            return NoMatch(reason="malformed TLS alert")
        name = ALERTS.get(data[6], str(data[6]))
        return Match(service="tls", extra=f"alert {name}", confidence=8)
    if data[5] != SERVER_HELLO:
        return NoMatch(reason="handshake record that is not a ServerHello")
    return Match(service="tls", extra=f"record version {_VERSIONS.get(minor, minor)}")


TLS_RECORDS = Matcher(name="tls", judge=_judge, max_bytes=MAX_RECORD)
