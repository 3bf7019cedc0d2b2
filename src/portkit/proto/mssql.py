"""Microsoft SQL Server (and other TDS servers), via a PRELOGIN message.

[MS-TDS] 2.2.3.1: every packet has an 8-byte header (type, status, length big-endian,
SPID, packet ID, window). 2.2.6.5 PRELOGIN (type 0x12): option tokens (type, offset,
length), 0xFF, then the option data. The server answers with a tabular result packet
(type 0x04) holding its own PRELOGIN options; VERSION (token 0) is 6 bytes: major,
minor, build (big-endian) and sub-build.
"""

from __future__ import annotations

from portkit.proto._match import NEED_MORE, Match, Matcher, NoMatch, Probe, Verdict

__all__ = ["MSSQL", "MSSQL_PRELOGIN"]

# Major version -> the release people name (SQL Server's own numbering).
_RELEASES = {8: "2000", 9: "2005", 10: "2008", 11: "2012", 12: "2014", 13: "2016", 14: "2017",
             15: "2019", 16: "2022", 17: "2025"}  # fmt: skip
_ENCRYPTION = {0: "encryption off", 1: "encryption on", 2: "encryption not supported",
               3: "encryption required"}  # fmt: skip


def _prelogin(host: str) -> bytes:
    # Options: VERSION (0) 6 bytes, ENCRYPTION (1) 1 byte (0: off), then the terminator.
    tokens_len = 2 * 5 + 1
    tokens = bytes([0]) + tokens_len.to_bytes(2, "big") + (6).to_bytes(2, "big")
    tokens += bytes([1]) + (tokens_len + 6).to_bytes(2, "big") + (1).to_bytes(2, "big")
    payload = tokens + b"\xff" + bytes(6) + b"\x00"
    length = 8 + len(payload)
    return bytes([0x12, 0x01]) + length.to_bytes(2, "big") + bytes(4) + payload


def _judge(data: bytes, final: bool) -> Verdict:
    if data[:1] not in (b"", b"\x04"):
        return NoMatch(reason="not a tabular result")
    if len(data) < 8:
        return NoMatch(reason="short header") if final else NEED_MORE
    length = int.from_bytes(data[2:4], "big")
    if not 8 + 6 <= length <= 4096 or data[1] & 0xFE:
        return NoMatch(reason="bad header")
    if len(data) < length:
        return NoMatch(reason="short packet") if final else NEED_MORE
    payload = data[8:length]
    options: dict[int, bytes] = {}
    pos = 0
    while pos < len(payload) and payload[pos] != 0xFF:
        if pos + 5 > len(payload):
            return NoMatch(reason="broken option list")
        kind = payload[pos]
        offset = int.from_bytes(payload[pos + 1 : pos + 3], "big")
        size = int.from_bytes(payload[pos + 3 : pos + 5], "big")
        if offset + size > len(payload):
            return NoMatch(reason="option outside the packet")
        options[kind] = payload[offset : offset + size]
        pos += 5
    version = options.get(0)
    if pos >= len(payload) or version is None or len(version) != 6:
        return NoMatch(reason="no VERSION option")
    major, minor, build = version[0], version[1], int.from_bytes(version[2:4], "big")
    release = _RELEASES.get(major)
    encryption = options.get(1, b"")
    return Match(
        service="ms-sql-s",
        product=f"Microsoft SQL Server {release}" if release else "Microsoft SQL Server",
        version=f"{major}.{minor}.{build}",
        extra=_ENCRYPTION.get(encryption[0]) if len(encryption) == 1 else None,
    )


MSSQL = Matcher(name="ms-sql-s", judge=_judge, max_bytes=4096)

MSSQL_PRELOGIN = Probe(
    name="mssql-prelogin",
    build=_prelogin,
    matchers=("ms-sql-s",),
    services=("ms-sql-s", "mssql"),
)
