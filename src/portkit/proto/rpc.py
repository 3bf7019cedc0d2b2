"""ONC RPC's port mapper (rpcbind), via a DUMP call to program 100000.

RFC 5531 §9: a call is ``xid, CALL (0), rpcvers 2, prog, vers, proc`` and two opaque
authentications (AUTH_NONE: flavor 0, no body); a reply is ``xid, REPLY (1)``, then
MSG_ACCEPTED (0) with the server's verifier and an ``accept_stat`` (SUCCESS 0,
PROG_UNAVAIL 1, PROG_MISMATCH 2, PROC_UNAVAIL 3, GARBAGE_ARGS 4, SYSTEM_ERR 5) or
MSG_DENIED (1). §11: over TCP each message is a record whose fragments carry a 4-byte
header (last-fragment bit, 31-bit length).

RFC 1833 §3.2 (version 2 of the port mapper program, 100000): PMAPPROC_DUMP (4) takes
no argument and answers the list of registrations, ``value-follows`` (1) before each
``(prog, vers, prot, port)`` and 0 after the last. The versions of program 100000 that
the server lists are what it speaks: 3 and 4 are rpcbind's (RFC 1833 §2), so a server
listing them is rpcbind, not the older portmap; "2-4" is how nmap writes them.
"""

from __future__ import annotations

import struct

from portkit.proto._match import NEED_MORE, Match, Matcher, NoMatch, Probe, Verdict

__all__ = ["RPCBIND_DUMP_TCP", "RPCBIND_DUMP_UDP", "RPCBIND_TCP", "RPCBIND_UDP"]

XID = 0x706B7270  # "pkrp": our call's transaction ID, which the reply must carry
PORTMAPPER = 100000
_DUMP = 4
_CALL = struct.pack(">IIIIII", XID, 0, 2, PORTMAPPER, 2, _DUMP) + bytes(16)  # two AUTH_NONE
_LAST_FRAGMENT = 0x80000000
_ACCEPT = {1: "program unavailable", 2: "version mismatch", 3: "procedure unavailable",
           4: "garbage arguments", 5: "system error"}  # fmt: skip
MAX_ENTRIES = 512  # registrations read; a real host has a few dozen
MAX_RECORD = 64 * 1024


def _judge_message(msg: bytes, complete: bool) -> Verdict:
    """Judge one RPC reply; ``complete`` when no more of it can come."""
    if len(msg) < 12:
        return NoMatch(reason="shorter than a reply") if complete else NEED_MORE
    xid, kind, stat = struct.unpack_from(">III", msg)
    if xid != XID or kind != 1 or stat not in (0, 1):
        return NoMatch(reason="not a reply to our call")
    if stat == 1:  # MSG_DENIED: an RPC server all the same
        return Match(service="rpcbind", extra="call denied", confidence=8)
    if len(msg) < 20:
        return NoMatch(reason="reply cut short") if complete else NEED_MORE
    verifier = struct.unpack_from(">I", msg, 16)[0]
    pos = 20 + (verifier + 3) // 4 * 4
    if verifier > 400:
        return NoMatch(reason="verifier too long")
    if len(msg) < pos + 4:
        return NoMatch(reason="reply cut short") if complete else NEED_MORE
    accept = struct.unpack_from(">I", msg, pos)[0]
    pos += 4
    if accept != 0:
        reason = _ACCEPT.get(accept)
        if reason is None:
            return NoMatch(reason="unknown accept status")
        return Match(service="rpcbind", extra=f"port mapper version 2: {reason}", confidence=8)
    versions: set[int] = set()
    for _ in range(MAX_ENTRIES):
        if len(msg) < pos + 4:
            return NoMatch(reason="list cut short") if complete else NEED_MORE
        follows = struct.unpack_from(">I", msg, pos)[0]
        if follows == 0:
            break
        if follows != 1 or len(msg) < pos + 20:
            if follows != 1:
                return NoMatch(reason="broken list")
            return NoMatch(reason="list cut short") if complete else NEED_MORE
        prog, vers = struct.unpack_from(">II", msg, pos + 4)
        if prog == PORTMAPPER:
            versions.add(vers)
        pos += 20
    else:
        return Match(service="rpcbind", extra="registrations not all read")
    listed = sorted(versions)
    version = (
        f"{listed[0]}-{listed[-1]}" if len(listed) > 1 else (str(listed[0]) if listed else None)
    )
    product = "rpcbind" if versions & {3, 4} else None
    return Match(service="rpcbind", product=product, version=version, extra="RPC #100000")


def _judge_tcp(data: bytes, final: bool) -> Verdict:
    # RFC 5531 §11: fragments until one with the last-fragment bit.
    message = bytearray()
    pos = 0
    while True:
        if len(data) < pos + 4:
            if message:
                return _judge_message(bytes(message), final)
            return NoMatch(reason="no record header") if final else NEED_MORE
        header = struct.unpack_from(">I", data, pos)[0]
        size = header & ~_LAST_FRAGMENT
        if size > MAX_RECORD or len(message) + size > MAX_RECORD:
            return NoMatch(reason="record too long")
        fragment = data[pos + 4 : pos + 4 + size]
        message += fragment
        if len(fragment) < size:
            # The reply's head can be judged before the whole list has come.
            verdict = _judge_message(bytes(message), final)
            return verdict if isinstance(verdict, NoMatch) or final else NEED_MORE
        pos += 4 + size
        if header & _LAST_FRAGMENT:
            return _judge_message(bytes(message), True)


RPCBIND_TCP = Matcher(name="rpcbind-tcp", judge=_judge_tcp, max_bytes=16 * 1024)


def _judge_udp(data: bytes, final: bool) -> Verdict:
    # A datagram is the whole message, and nothing in it says how long it is: judged
    # only once it has all come.
    return _judge_message(data, True) if final else NEED_MORE


RPCBIND_UDP = Matcher(name="rpcbind-udp", judge=_judge_udp, max_bytes=8192)

RPCBIND_DUMP_TCP = Probe(
    name="rpcbind-dump",
    build=lambda host: struct.pack(">I", _LAST_FRAGMENT | len(_CALL)) + _CALL,
    matchers=("rpcbind-tcp",),
    services=("sunrpc", "rpcbind"),
)
RPCBIND_DUMP_UDP = Probe(
    name="rpcbind-dump-udp",
    build=lambda host: _CALL,
    matchers=("rpcbind-udp",),
    services=("sunrpc", "rpcbind"),
    transport="udp",
)
