"""Multicast DNS (RFC 6762) and LLMNR (RFC 4795) responders, asked by unicast for the
target's own name.

§6.7 "legacy unicast responses": a query sent to port 5353 from another port is answered
by unicast to the sender, with the query's ID and question. A responder answers only for
records it holds (§6: no negative answers), so we ask for one it has: the reverse
mapping of the address we sent to (``PTR`` under ``in-addr.arpa``/``ip6.arpa``), which
responders publish for their own addresses; for a name, the DNS-SD service enumeration
``_services._dns-sd._udp.local`` (RFC 6763 §9).

LLMNR (RFC 4795) uses DNS's message format on port 5355. §2.4: a responder answers a
unicast query by unicast, and (§2.3) only for names it is authoritative for, its own:
the same reverse-mapping question, sent with an ID of its own. §2.1.1: a response has QR
set and opcode 0; C, TC and T are LLMNR's flags, which DNS's matcher does not judge,
so the ID alone tells which of the three probes an answer belongs to.
"""

from __future__ import annotations

import ipaddress

import dns.exception
import dns.message
import dns.name
import dns.rdatatype
import dns.reversename

from portkit.proto._match import Match, Matcher, NoMatch, Probe, Verdict

__all__ = ["LLMNR", "LLMNR_QUERY", "MDNS", "MDNS_QUERY"]

QUERY_ID = 0x6D64  # "md": not the DNS probe's ID, so each matcher sees its own answers
LLMNR_ID = 0x6C6C  # "ll"


def _query(host: str, query_id: int = QUERY_ID) -> bytes:
    try:
        name = dns.reversename.from_address(str(ipaddress.ip_address(host.strip("[]"))))
    except ValueError:
        name = dns.name.from_text("_services._dns-sd._udp.local")
    query = dns.message.make_query(name, dns.rdatatype.PTR)
    query.id = query_id
    query.flags = 0
    return query.to_wire()


def _judge(data: bytes, final: bool) -> Verdict:
    return _judge_answer(data, QUERY_ID, "mdns")


def _judge_llmnr(data: bytes, final: bool) -> Verdict:
    if len(data) >= 3 and data[2] & 0x78:
        return NoMatch(reason="not opcode 0")  # RFC 4795 §2.1.1
    return _judge_answer(data, LLMNR_ID, "llmnr")


def _judge_answer(data: bytes, query_id: int, service: str) -> Verdict:
    if len(data) < 12 or int.from_bytes(data[:2], "big") != query_id or not data[2] & 0x80:
        return NoMatch(reason="not a response to our query")
    try:
        message = dns.message.from_wire(data, ignore_trailing=True)
    except (dns.exception.DNSException, ValueError, UnicodeError) as exc:
        return NoMatch(reason=f"malformed DNS message: {type(exc).__name__}")
    names = [
        rdata.to_text()
        for rrset in message.answer
        if rrset.rdtype == dns.rdatatype.PTR
        for rdata in rrset
    ]
    if not names:
        return NoMatch(reason="no answer")  # §6: responders do not answer what they lack
    return Match(service=service, extra=f"name {', '.join(names[:4])}"[:120])


MDNS = Matcher(name="mdns", judge=_judge, max_bytes=4096)

MDNS_QUERY = Probe(
    name="mdns-query",
    build=_query,
    matchers=("mdns",),
    services=("mdns", "zeroconf"),
    transport="udp",
)

LLMNR = Matcher(name="llmnr", judge=_judge_llmnr, max_bytes=4096)

LLMNR_QUERY = Probe(
    name="llmnr-query",
    build=lambda host: _query(host, LLMNR_ID),
    matchers=("llmnr",),
    services=("llmnr",),
    transport="udp",
)
