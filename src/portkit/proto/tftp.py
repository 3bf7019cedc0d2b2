"""TFTP servers (RFC 1350), via a read request for a file that should not exist.

§5: a read request is opcode 1, the file name, a zero byte, the mode (``octet``) and a
zero byte. The server answers with DATA (opcode 3, block 1, up to 512 bytes) or ERROR
(opcode 5, an error code 0-7 (§Appendix "Error Codes"; RFC 2347 adds 8), a message and a
zero byte). §4: the answer comes from a new port of the server's (its transfer ID), so
the sender must accept it from any port of the host it asked.
"""

from __future__ import annotations

from portkit.proto._match import Match, Matcher, NoMatch, Probe, Verdict

__all__ = ["TFTP", "TFTP_READ"]

_ERRORS = {
    0: "not defined",
    1: "file not found",
    2: "access violation",
    3: "disk full",
    4: "illegal operation",
    5: "unknown transfer ID",
    6: "file already exists",
    7: "no such user",
    8: "option negotiation refused",
}


def _judge(data: bytes, final: bool) -> Verdict:
    # A datagram arrives whole: there is never more to wait for.
    if len(data) < 4 or data[0] != 0:
        return NoMatch(reason="not a TFTP packet")
    opcode = data[1]
    if opcode == 3:
        block = int.from_bytes(data[2:4], "big")
        if block != 1 or len(data) > 4 + 512:
            return NoMatch(reason="not the first DATA block")
        return Match(service="tftp", extra="file served", confidence=8)
    if opcode != 5:
        return NoMatch(reason="not DATA or ERROR")
    code = int.from_bytes(data[2:4], "big")
    message = data[4:]
    if code not in _ERRORS or not message.endswith(b"\x00") or b"\x00" in message[:-1]:
        return NoMatch(reason="not a TFTP ERROR")
    text = message[:-1].decode("ascii", "replace")[:80]
    return Match(service="tftp", extra=f"error {code}: {text or _ERRORS[code]}")


TFTP = Matcher(name="tftp", judge=_judge, max_bytes=516)

TFTP_READ = Probe(
    name="tftp-read",
    build=lambda host: b"\x00\x01portkit-probe.nonexistent\x00octet\x00",
    matchers=("tftp",),
    services=("tftp",),
    transport="udp",
)
