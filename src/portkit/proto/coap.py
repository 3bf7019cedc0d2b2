"""CoAP servers (RFC 7252), via a GET of ``/.well-known/core`` (RFC 6690 §4).

§3: a message is a 4-byte header (version 1, type, token length, code, message ID), a
token, options and an optional payload after 0xFF. We send a Confirmable GET (type 0,
code 0.01) with two Uri-Path options (number 11, §5.10.1); a server answers with an
Acknowledgement (type 2) or a Reset (type 3, §4.2) carrying the same message ID.
"""

from __future__ import annotations

from portkit.proto._match import Match, Matcher, NoMatch, Probe, Verdict

__all__ = ["COAP", "COAP_DISCOVER"]

MESSAGE_ID = b"\x70\x6b"  # "pk"

_CLASSES = {2: "success", 4: "client error", 5: "server error"}


def _judge(data: bytes, final: bool) -> Verdict:
    if len(data) < 4:
        return NoMatch(reason="short message")
    version, kind, token_len = data[0] >> 6, (data[0] >> 4) & 0b11, data[0] & 0x0F
    if version != 1 or kind not in (2, 3) or data[2:4] != MESSAGE_ID:
        return NoMatch(reason="not an answer to our CoAP request")
    if token_len != 0:  # §5.3.2: the answer echoes our (empty) token
        return NoMatch(reason="another token")
    if kind == 3:
        if len(data) != 4 or data[1] != 0:
            return NoMatch(reason="bad Reset")  # §4.2: a Reset is an empty message
        return Match(service="coap", extra="reset", confidence=8)
    code_class, detail = data[1] >> 5, data[1] & 0x1F
    if code_class not in _CLASSES:
        return NoMatch(reason="not a response code")
    extra = f"{code_class}.{detail:02d} {_CLASSES[code_class]}"
    payload = data[4:].split(b"\xff", 1)[1] if b"\xff" in data[4:] else b""
    if payload.startswith(b"</"):
        links = payload.count(b"<")
        extra += f"; {links} resource{'s' if links != 1 else ''}"
    return Match(service="coap", extra=extra)


COAP = Matcher(name="coap", judge=_judge, max_bytes=2048)

COAP_DISCOVER = Probe(
    name="coap-discover",
    # 0x40: version 1, Confirmable, no token; 0x01: GET. 0xBB: Uri-Path (delta 11),
    # length 11; 0x04: Uri-Path again (delta 0), length 4.
    build=lambda host: b"\x40\x01" + MESSAGE_ID + b"\xbb.well-known\x04core",
    matchers=("coap",),
    services=("coap",),
    transport="udp",
)
