"""UPnP devices (SSDP), via a unicast ``M-SEARCH`` (UPnP Device Architecture 1.1 §1.3).

§1.3.2: a search is an HTTP-style request ``M-SEARCH * HTTP/1.1`` with ``HOST``,
``MAN: "ssdp:discover"``, ``MX`` and ``ST`` (``ssdp:all``: every device and service);
§1.3.3: each answer is ``HTTP/1.1 200 OK`` with ``ST``, ``USN``, ``LOCATION`` and
``SERVER: <OS>/<version> UPnP/<version> <product>/<version>``.
"""

from __future__ import annotations

import re

from portkit.proto._match import Match, Matcher, NoMatch, Probe, Verdict
from portkit.proto._text import parse_head, split_product

__all__ = ["SSDP", "SSDP_SEARCH"]

_UPNP = re.compile(r"\bUPnP/\d\.\d\s+(\S+)(?:\s|$)", re.IGNORECASE)


def _judge(data: bytes, final: bool) -> Verdict:
    if not data.startswith(b"HTTP/1.1 200"):
        return NoMatch(reason="not a search answer")
    head = parse_head(data)
    if head is None or "usn" not in head.headers or "st" not in head.headers:
        return NoMatch(reason="no ST and USN")
    server = head.headers.get("server", "")
    product = version = None
    found = _UPNP.search(server)
    if found is not None:
        name, version, _ = split_product(found.group(1))
        product = name or None
    location = head.headers.get("location")
    return Match(
        service="upnp",
        product=product,
        version=version,
        extra=f"location {location[:100]}" if location else None,
    )


SSDP = Matcher(name="ssdp", judge=_judge, max_bytes=4096)

SSDP_SEARCH = Probe(
    name="ssdp-search",
    build=lambda host: (
        b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n"
        b'MAN: "ssdp:discover"\r\nMX: 1\r\nST: ssdp:all\r\n\r\n'
    ),
    matchers=("ssdp",),
    services=("ssdp", "upnp"),
    transport="udp",
)
