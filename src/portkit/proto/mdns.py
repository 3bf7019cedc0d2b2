"""Multicast DNS responders (RFC 6762), asked by unicast for the target's own name.

§6.7 "legacy unicast responses": a query sent to port 5353 from another port is answered
by unicast to the sender, with the query's ID and question. A responder answers only for
records it holds (§6: no negative answers), so we ask for one it has: the reverse
mapping of the address we sent to (``PTR`` under ``in-addr.arpa``/``ip6.arpa``), which
responders publish for their own addresses; for a name, the DNS-SD service enumeration
``_services._dns-sd._udp.local`` (RFC 6763 §9).
"""

from __future__ import annotations

import ipaddress

import dns.exception
import dns.message
import dns.name
import dns.rdatatype
import dns.reversename

from portkit.proto._match import Match, Matcher, NoMatch, Probe, Verdict

__all__ = ["MDNS", "MDNS_QUERY"]

QUERY_ID = 0x6D64  # "md": not the DNS probe's ID, so each matcher sees its own answers


def _query(host: str) -> bytes:
    try:
        name = dns.reversename.from_address(str(ipaddress.ip_address(host.strip("[]"))))
    except ValueError:
        name = dns.name.from_text("_services._dns-sd._udp.local")
    query = dns.message.make_query(name, dns.rdatatype.PTR)
    query.id = QUERY_ID
    query.flags = 0
    return query.to_wire()


def _judge(data: bytes, final: bool) -> Verdict:
    if len(data) < 12 or int.from_bytes(data[:2], "big") != QUERY_ID or not data[2] & 0x80:
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
    return Match(service="mdns", extra=f"name {', '.join(names[:4])}"[:120])


MDNS = Matcher(name="mdns", judge=_judge, max_bytes=4096)

MDNS_QUERY = Probe(
    name="mdns-query",
    build=_query,
    matchers=("mdns",),
    services=("mdns", "zeroconf"),
    transport="udp",
)
