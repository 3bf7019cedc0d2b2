"""PostgreSQL via a protocol 3.0 StartupMessage.

PostgreSQL docs, "Frontend/Backend Protocol", §55.2.1 and §55.7: the StartupMessage is
int32 length, int32 196608 (3.0), then name/value strings. The server answers with an
Authentication request (``R``) or an ErrorResponse (``E``) whose fields are a type byte
and a string each (``S`` severity, ``C`` SQLSTATE code, ``M`` message).
"""

from __future__ import annotations

import struct

from portkit.proto._match import NEED_MORE, Match, Matcher, NoMatch, Probe, Verdict

__all__ = ["POSTGRESQL", "POSTGRESQL_STARTUP"]

PROTOCOL_3_0 = 196608
MAX_MESSAGE = 4096
# AuthenticationOk, KerberosV5, CleartextPassword, MD5Password, GSS, SSPI, SASL.
_AUTH_CODES = {0: "trust", 2: "kerberos", 3: "password", 5: "md5", 7: "gss", 9: "sspi", 10: "sasl"}


def startup_message() -> bytes:
    """Return the StartupMessage bytes for user and database ``portkit``."""
    body = struct.pack("!I", PROTOCOL_3_0) + b"user\0portkit\0database\0portkit\0\0"
    return struct.pack("!I", len(body) + 4) + body


def _judge(data: bytes, final: bool) -> Verdict:
    if len(data) < 5:
        if data and data[:1] not in (b"R", b"E"):
            return NoMatch(reason="not an authentication request or error")
        return NEED_MORE
    kind = data[:1]
    length = int.from_bytes(data[1:5], "big")
    if kind not in (b"R", b"E") or not 8 <= length <= MAX_MESSAGE:
        return NoMatch(reason="not a PostgreSQL backend message")
    if len(data) < 1 + length:
        return NEED_MORE
    body = data[5 : 1 + length]
    if kind == b"R":
        code = int.from_bytes(body[:4], "big")
        if code not in _AUTH_CODES:
            return NoMatch(reason="unknown authentication code")
        return Match(service="postgresql", product="PostgreSQL", extra=f"auth {_AUTH_CODES[code]}")
    fields: dict[str, str] = {}
    for part in body.split(b"\0"):
        if part:
            fields[chr(part[0])] = part[1:].decode("utf-8", "replace")
    if not body.endswith(b"\0\0") or "S" not in fields or "M" not in fields:
        return NoMatch(reason="malformed ErrorResponse")
    return Match(service="postgresql", product="PostgreSQL", extra=fields["M"][:120])


POSTGRESQL = Matcher(name="postgresql", judge=_judge, max_bytes=MAX_MESSAGE + 1)

POSTGRESQL_STARTUP = Probe(
    name="postgresql-startup",
    build=lambda host: startup_message(),
    matchers=("postgresql",),
    services=("postgresql", "postgres"),
)
