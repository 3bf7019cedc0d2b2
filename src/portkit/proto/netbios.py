"""NetBIOS name servers (RFC 1002), via a node status request for the name ``*``.

§4.2.18: NODE STATUS REQUEST is a name-service packet (§4.2.1.1 header: transaction ID,
flags, four counts) asking for the wildcard name ``*`` (§4.1: a 16-byte name, each half
byte written as a letter 'A'-'P', so ``*`` and fifteen zero bytes are ``CKAAAA...``) with
question type NBSTAT (0x0021). §4.2.18 NODE STATUS RESPONSE answers with one resource
record: the node's names (15 characters, a suffix byte, 2 flag bytes each) and statistics.
"""

from __future__ import annotations

from portkit.proto._match import Match, Matcher, NoMatch, Probe, Verdict

__all__ = ["NETBIOS_NBSTAT", "NETBIOS_NS"]

TRANSACTION = b"\x70\x6b"
NBSTAT = b"\x00\x21"
# "*" padded with zero bytes, first-level encoded (RFC 1001 §14.1): length 32, the
# label, then the empty root label.
WILDCARD = b"\x20CK" + b"A" * 30 + b"\x00"

_GROUP = 0x8000


def _judge(data: bytes, final: bool) -> Verdict:
    if len(data) < 12 or data[:2] != TRANSACTION:
        return NoMatch(reason="not an answer to our request")
    flags = int.from_bytes(data[2:4], "big")
    if not flags & 0x8000 or (flags >> 11) & 0xF != 0:
        return NoMatch(reason="not a query response")
    if int.from_bytes(data[6:8], "big") < 1:
        return NoMatch(reason="no answer record")
    pos = 12
    if data[pos : pos + len(WILDCARD)] != WILDCARD:
        return NoMatch(reason="another name")
    pos += len(WILDCARD)
    if data[pos : pos + 4] != NBSTAT + b"\x00\x01":
        return NoMatch(reason="not a node status record")
    pos += 8  # type, class, TTL
    rdlength = int.from_bytes(data[pos : pos + 2], "big")
    rdata = data[pos + 2 : pos + 2 + rdlength]
    if len(rdata) != rdlength or not rdata:
        return NoMatch(reason="truncated record")
    count = rdata[0]
    if 1 + 18 * count > len(rdata):
        return NoMatch(reason="name table longer than the record")
    host = workgroup = None
    for i in range(count):
        entry = rdata[1 + 18 * i : 19 + 18 * i]
        name = entry[:15].decode("latin-1").rstrip()
        suffix, name_flags = entry[15], int.from_bytes(entry[16:18], "big")
        if suffix == 0x00 and name_flags & _GROUP:
            workgroup = workgroup or name
        elif suffix == 0x00 or (suffix == 0x20 and host is None):
            host = host or name
    extra = "; ".join(
        part for part in (f"name {host}" if host else "",
                          f"workgroup {workgroup}" if workgroup else "") if part
    )  # fmt: skip
    return Match(service="netbios-ns", extra=extra or None)


NETBIOS_NS = Matcher(name="netbios-ns", judge=_judge, max_bytes=1500)

NETBIOS_NBSTAT = Probe(
    name="netbios-nbstat",
    # Header: ID, flags 0 (a unicast query), QDCOUNT 1, no other records.
    build=lambda host: (
        TRANSACTION + b"\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00" + WILDCARD + NBSTAT + b"\x00\x01"
    ),
    matchers=("netbios-ns",),
    services=("netbios-ns",),
    transport="udp",
)
