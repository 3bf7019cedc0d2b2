"""DNS servers over TCP and UDP, asked for their version (``version.bind CH TXT``).

RFC 1035 §4.1 message format; over TCP each message is preceded by a two-octet length
(RFC 1035 §4.2.2, RFC 7766). Any well-formed response to our query id is a DNS server,
even REFUSED; BIND, dnsmasq, Unbound, NSD, Knot and PowerDNS answer the CHAOS-class
``version.bind`` query (a convention, not an RFC) with their name and version.
dnspython builds and parses the messages.
"""

from __future__ import annotations

import re

import dns.exception
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype

from portkit.proto._match import NEED_MORE, Match, Matcher, NoMatch, Probe, Verdict

__all__ = ["DNS_TCP", "DNS_UDP", "DNS_VERSION_TCP", "DNS_VERSION_UDP", "QUERY_ID"]

QUERY_ID = 0x706B  # "pk"
MAX_MESSAGE = 4096


def version_query() -> bytes:
    """Return the wire form of the ``version.bind CH TXT`` query."""
    query = dns.message.make_query("version.bind", dns.rdatatype.TXT, dns.rdataclass.CH)
    query.id = QUERY_ID
    query.flags = 0  # no recursion wanted
    return query.to_wire()


_QUERY = version_query()

_PRODUCTS = [
    (re.compile(r"^dnsmasq-([\w.]+)"), "dnsmasq"),
    (re.compile(r"^unbound ([\w.]+)", re.IGNORECASE), "Unbound"),
    (re.compile(r"^Knot DNS ([\w.]+)"), "Knot DNS"),
    (re.compile(r"^NSD ([\w.]+)"), "NLnet Labs NSD"),
    (re.compile(r"^PowerDNS.*?([\d.]+)"), "PowerDNS"),
    # BIND says only its version, with the distribution's package revision and name
    # ("9.18.49-1~deb12u1-Debian"): the name goes to extra, as nmap has it.
    (re.compile(r"^(\d+\.\d+[\w.~+-]*?)(?:-(Debian|Ubuntu|RedHat))?$"), "ISC BIND"),
]


def _judge_message(wire: bytes) -> Verdict:
    if len(wire) < 12:
        return NoMatch(reason="shorter than a DNS header")
    if int.from_bytes(wire[:2], "big") != QUERY_ID or not wire[2] & 0x80:
        return NoMatch(reason="not a response to our query")
    try:
        message = dns.message.from_wire(wire, ignore_trailing=True)
    except (dns.exception.DNSException, ValueError, UnicodeError) as exc:
        return NoMatch(reason=f"malformed DNS message: {type(exc).__name__}")
    rcode = dns.rcode.to_text(message.rcode())
    for rrset in message.answer:
        if rrset.rdtype != dns.rdatatype.TXT:
            continue
        for rdata in rrset:
            strings = getattr(rdata, "strings", ())
            text = b"".join(strings).decode("latin-1")
            for pattern, product in _PRODUCTS:
                m = pattern.search(text)
                if m:
                    distribution = m.group(2) if m.lastindex == 2 else None
                    extra = f"{distribution} Linux" if distribution else None
                    return Match(service="domain", product=product, version=m.group(1), extra=extra)
            return Match(service="domain", extra=f"version.bind: {text}")
    return Match(service="domain", extra=f"rcode {rcode}")


def _judge_tcp(data: bytes, final: bool) -> Verdict:
    if len(data) < 2:
        return NEED_MORE
    length = int.from_bytes(data[:2], "big")
    if length < 12:
        return NoMatch(reason="length shorter than a DNS header")
    if len(data) >= 4 and int.from_bytes(data[2:4], "big") != QUERY_ID:
        return NoMatch(reason="not a response to our query")
    if len(data) < 2 + length:
        return NoMatch(reason="message too long") if length > MAX_MESSAGE else NEED_MORE
    return _judge_message(data[2 : 2 + length])


def _judge_udp(data: bytes, final: bool) -> Verdict:
    return _judge_message(data)


DNS_TCP = Matcher(name="dns-tcp", judge=_judge_tcp, max_bytes=MAX_MESSAGE + 2)
DNS_UDP = Matcher(name="dns-udp", judge=_judge_udp, max_bytes=MAX_MESSAGE)

DNS_VERSION_TCP = Probe(
    name="dns-version-tcp",
    build=lambda host: len(_QUERY).to_bytes(2, "big") + _QUERY,
    matchers=("dns-tcp",),
    services=("domain", "dns", "mdns"),
)
DNS_VERSION_UDP = Probe(
    name="dns-version-udp",
    build=lambda host: _QUERY,
    matchers=("dns-udp",),
    services=("domain", "dns", "mdns"),
    transport="udp",
)
