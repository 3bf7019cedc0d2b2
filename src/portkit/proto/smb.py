"""SMB servers via an SMB2 NEGOTIATE over direct TCP ([MS-SMB2] §2.2.3, §2.2.4).

Direct TCP transport ([MS-SMB2] §2.1) frames each message with a 4-byte header: a zero
byte and a 24-bit length (as NetBIOS session messages, RFC 1002 §4.3.1). The server's
NEGOTIATE response starts ``\\xfeSMB`` with command 0 and names the chosen dialect;
SMB1-only servers answer with ``\\xffSMB``.
"""

from __future__ import annotations

import struct

from portkit.proto._match import NEED_MORE, Match, Matcher, NoMatch, Probe, Verdict

__all__ = ["SMB", "SMB_NEGOTIATE"]

DIALECTS = (0x0202, 0x0210, 0x0300, 0x0302)
CLIENT_GUID = b"portkit-smb-prob"
MAX_MESSAGE = 65536


def negotiate_request() -> bytes:
    """Return a direct-TCP framed SMB2 NEGOTIATE offering dialects 2.0.2-3.0.2."""
    header = b"\xfeSMB" + struct.pack("<HHIHHIIQIIQ", 64, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0) + bytes(16)
    body = struct.pack("<HHHHI", 36, len(DIALECTS), 1, 0, 0) + CLIENT_GUID + bytes(8)
    body += b"".join(struct.pack("<H", d) for d in DIALECTS)
    message = header + body
    return b"\x00" + len(message).to_bytes(3, "big") + message


def _judge(data: bytes, final: bool) -> Verdict:
    if data[:1] not in (b"", b"\x00"):
        return NoMatch(reason="not a direct-TCP frame")
    if len(data) < 8:
        magic = data[4:8]
        if magic and not (b"\xfeSMB".startswith(magic) or b"\xffSMB".startswith(magic)):
            return NoMatch(reason="not an SMB message")
        return NEED_MORE
    length = int.from_bytes(data[1:4], "big")
    if data[4:8] == b"\xffSMB":
        return Match(service="microsoft-ds", extra="SMB1", confidence=9)
    if data[4:8] != b"\xfeSMB" or not 64 < length <= MAX_MESSAGE:
        return NoMatch(reason="not an SMB2 message")
    if len(data) < 4 + 64 + 6:
        return NEED_MORE
    command = int.from_bytes(data[4 + 12 : 4 + 14], "little")
    if command != 0:
        return NoMatch(reason="not a NEGOTIATE response")
    dialect = int.from_bytes(data[4 + 64 + 4 : 4 + 64 + 6], "little")
    extra = f"SMB {dialect >> 8}.{(dialect >> 4) & 0xF}.{dialect & 0xF}" if dialect else None
    return Match(service="microsoft-ds", extra=extra)


SMB = Matcher(name="smb", judge=_judge, max_bytes=MAX_MESSAGE + 4)

SMB_NEGOTIATE = Probe(
    name="smb-negotiate",
    build=lambda host: negotiate_request(),
    matchers=("smb",),
    services=("microsoft-ds", "netbios-ssn", "smb"),
)
