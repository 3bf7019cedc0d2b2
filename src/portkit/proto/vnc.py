"""VNC servers by the RFB ProtocolVersion message they send first (RFC 6143 §7.1.1).

Exactly 12 bytes: ``RFB 003.008\\n`` (3.3, 3.7 and 3.8 are the published versions;
some servers announce others such as 3.889 or 4.001).
"""

from __future__ import annotations

import re

from portkit.proto._match import NEED_MORE, Match, Matcher, NoMatch, Verdict, expect_prefix

__all__ = ["VNC"]

_VERSION = re.compile(rb"^RFB (\d{3})\.(\d{3})\n")


def _judge(data: bytes, final: bool) -> Verdict:
    early = expect_prefix(data, [b"RFB "])
    if early is not None:
        return early
    if len(data) < 12:
        return NEED_MORE
    m = _VERSION.match(data)
    if m is None:
        return NoMatch(reason="malformed ProtocolVersion")
    major, minor = int(m.group(1)), int(m.group(2))
    return Match(service="rfb", extra=f"protocol {major}.{minor}")


VNC = Matcher(name="vnc", judge=_judge, max_bytes=12)
