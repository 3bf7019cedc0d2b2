"""Oracle database listeners (TNS), via a CONNECT that asks for the listener's version.

Oracle's Transparent Network Substrate frames every packet with an eight-octet header:
packet length (16 bits, big-endian), packet checksum (16, zero), packet type (8), a
reserved octet and a header checksum (16, zero). Types: 1 CONNECT, 2 ACCEPT, 4 REFUSE,
5 REDIRECT, 11 RESEND. The CONNECT body carries the client's protocol version (here
314), the lowest it accepts (300), buffer sizes, and then connect data, a parenthesised
descriptor: ``(CONNECT_DATA=(COMMAND=version))`` is what ``lsnrctl version`` sends.

A listener that will not serve the request refuses it with a REFUSE whose data is a
descriptor of its own, ``(DESCRIPTION=(TMP=)(VSNNUM=...)(ERR=...))``: the refusal names
the listener, and ``VSNNUM`` is its version packed as 8.4.8.4.8 bits (318767104 is
19.0.0.0.0). A REDIRECT also carries a descriptor; RESEND asks for the CONNECT again
(a listener that wants a larger packet); ACCEPT carries a version of 300 or more.
"""

from __future__ import annotations

import re

from portkit.proto._match import NEED_MORE, Match, Matcher, NoMatch, Probe, Verdict

__all__ = ["TNS", "TNS_CONNECT"]

HEADER = 8
_CONNECT, _ACCEPT, _REFUSE, _REDIRECT, _RESEND = 1, 2, 4, 5, 11
_CONNECT_DATA = b"(CONNECT_DATA=(COMMAND=version))"
_BODY_BEFORE_DATA = 26  # CONNECT fields from the version up to the connect data


def _connect(host: str) -> bytes:
    offset = HEADER + _BODY_BEFORE_DATA
    body = (
        (314).to_bytes(2, "big")  # version
        + (300).to_bytes(2, "big")  # lowest version accepted
        + b"\x00\x00"  # global service options
        + (2048).to_bytes(2, "big")  # session data unit size
        + (32767).to_bytes(2, "big")  # maximum transmission data unit size
        + b"\x4f\x98"  # NT protocol characteristics
        + b"\x00\x00"  # line turnaround value
        + b"\x00\x01"  # the value 1 in the client's byte order
        + len(_CONNECT_DATA).to_bytes(2, "big")
        + offset.to_bytes(2, "big")
        + b"\x00\x00\x00\x00"  # maximum receivable connect data
        + b"\x41\x41"  # connect flags 0 and 1
    )
    packet = body + _CONNECT_DATA
    length = HEADER + len(packet)
    return length.to_bytes(2, "big") + b"\x00\x00" + bytes([_CONNECT, 0]) + b"\x00\x00" + packet


_VSNNUM = re.compile(rb"\(VSNNUM=(\d{1,10})\)")
_ERR = re.compile(rb"\(ERR=(\d{1,6})\)")


def _version(vsnnum: int) -> str:
    parts = (vsnnum >> 24 & 0xFF, vsnnum >> 20 & 0xF, vsnnum >> 12 & 0xFF,
             vsnnum >> 8 & 0xF, vsnnum & 0xFF)  # fmt: skip
    return ".".join(str(p) for p in parts)


def _judge(data: bytes, final: bool) -> Verdict:
    if len(data) >= 2:
        length = int.from_bytes(data[:2], "big")
        if not HEADER <= length <= 8192:
            return NoMatch(reason="not a TNS packet length")
    if len(data) >= 5 and (data[2:4] != b"\x00\x00" or data[4] not in
                           (_ACCEPT, _REFUSE, _REDIRECT, _RESEND)):  # fmt: skip
        return NoMatch(reason="not a TNS answer")
    if len(data) >= 8 and data[6:8] != b"\x00\x00":
        return NoMatch(reason="nonzero TNS header checksum")
    if len(data) < HEADER:
        return NoMatch(reason="short reply") if final else NEED_MORE
    length = int.from_bytes(data[:2], "big")
    if len(data) < length:
        return NoMatch(reason="short packet") if final else NEED_MORE
    packet = data[:length]
    kind = packet[4]
    if kind == _RESEND:
        if length != HEADER:
            return NoMatch(reason="RESEND with a body")
        return Match(service="oracle-tns", product="Oracle TNS listener", extra="resend",
                     confidence=8)  # fmt: skip
    if kind == _ACCEPT:
        version = int.from_bytes(packet[8:10], "big") if length >= 10 else 0
        if not 300 <= version <= 399:
            return NoMatch(reason="not a TNS protocol version")
        return Match(service="oracle-tns", product="Oracle TNS listener",
                     extra=f"accepted, protocol version {version}")  # fmt: skip
    # REFUSE and REDIRECT carry a descriptor.
    if b"(DESCRIPTION=" not in packet and b"(ERR=" not in packet:
        return NoMatch(reason="no TNS descriptor")
    vsn = _VSNNUM.search(packet)
    err = _ERR.search(packet)
    return Match(
        service="oracle-tns",
        product="Oracle TNS listener",
        version=_version(int(vsn.group(1))) if vsn else None,
        extra=("refused" if kind == _REFUSE else "redirect")
        + (f", TNS-{int(err.group(1)):05d}" if err else ""),
    )


TNS = Matcher(name="oracle-tns", judge=_judge, max_bytes=8192)

TNS_CONNECT = Probe(
    name="oracle-tns-connect",
    build=_connect,
    matchers=("oracle-tns",),
    services=("ncube-lm", "oracle", "oracle-tns"),
)
