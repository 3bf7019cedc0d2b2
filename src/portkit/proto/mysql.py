"""MySQL and MariaDB by the handshake packet the server sends first.

MySQL client/server protocol, "Connection Phase": packets are a 3-byte little-endian
length and a sequence id, then the payload. The Initial Handshake (protocol 10) carries the
server version as a NUL-terminated string; a refusal is an ERR packet (0xff, error code,
message), e.g. "Host 'x' is not allowed to connect to this MariaDB server".
"""

from __future__ import annotations

import re

from portkit.proto._match import NEED_MORE, Match, Matcher, NoMatch, Verdict

__all__ = ["MYSQL"]

MAX_PACKET = 1024
_VERSION = re.compile(r"^(\d+\.\d+\.\d+)")


def _judge(data: bytes, final: bool) -> Verdict:
    if len(data) < 5:
        if len(data) >= 4 and data[3] != 0:
            return NoMatch(reason="first packet must have sequence 0")
        return NEED_MORE
    length = int.from_bytes(data[:3], "little")
    if data[3] != 0 or not 7 <= length <= MAX_PACKET:
        return NoMatch(reason="not a MySQL packet header")
    if data[4] not in (10, 0xFF):
        return NoMatch(reason="not a handshake or error packet")
    if len(data) < 4 + length:
        return NEED_MORE
    payload = data[4 : 4 + length]
    if payload[0] == 0xFF:
        message = payload[3:].lstrip(b"#").decode("utf-8", "replace")
        if payload[3:4] == b"#":
            message = message[5:]
        if not message.isprintable():
            return NoMatch(reason="error packet without a text message")
        product = "MariaDB" if "MariaDB" in message else "MySQL"
        return Match(service="mysql", product=product, extra=message[:120], confidence=8)
    end = payload.find(b"\0", 1)
    if end < 0:
        return NoMatch(reason="server version not terminated")
    version_text = payload[1:end].decode("latin-1")
    m = _VERSION.match(version_text)
    if m is None:
        return NoMatch(reason="no server version")
    if "MariaDB" in version_text:
        # MariaDB 10+ prefixes "5.5.5-" for old clients.
        version = version_text.removeprefix("5.5.5-").split("-")[0]
        return Match(service="mysql", product="MariaDB", version=version, extra=version_text)
    return Match(service="mysql", product="MySQL", version=m.group(1), extra=version_text)


MYSQL = Matcher(name="mysql", judge=_judge, max_bytes=MAX_PACKET + 4)
