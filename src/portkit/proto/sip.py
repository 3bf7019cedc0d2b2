"""SIP servers via an ``OPTIONS`` request over TCP or UDP (RFC 3261 §11).

The request carries the mandatory Via (with ``rport``, RFC 3581, so a UDP answer comes
back to our port), From, To, Call-ID, CSeq and Max-Forwards headers (§8.1.1). Responses
start ``SIP/2.0 <code>``; the ``Server`` or ``User-Agent`` header names the product.
"""

from __future__ import annotations

import re

from portkit.endpoint._authority import bracket_host
from portkit.proto._match import Match, Matcher, Probe, Verdict
from portkit.proto._text import split_product, status_head

__all__ = ["SIP", "SIP_OPTIONS_TCP", "SIP_OPTIONS_UDP", "options_request"]

_STATUS = re.compile(r"^SIP/2\.0 (\d{3})")


def options_request(host: str, transport: str) -> bytes:
    """Return an OPTIONS request to ``host`` over ``transport`` ("TCP" or "UDP")."""
    target = bracket_host(host)
    return (
        f"OPTIONS sip:{target} SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} portkit.invalid;branch=z9hG4bK-portkit-probe;rport\r\n"
        "Max-Forwards: 70\r\n"
        f"To: <sip:{target}>\r\n"
        "From: <sip:portkit@portkit.invalid>;tag=portkit\r\n"
        "Call-ID: portkit-probe@portkit.invalid\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Accept: application/sdp\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode("ascii", "replace")


def _judge(data: bytes, final: bool) -> Verdict:
    got = status_head(
        data, final, prefix=b"SIP/2.0 ", status=_STATUS, not_status="not a SIP status line"
    )
    if not isinstance(got, tuple):
        return got
    head, status = got
    agent = head.headers.get("server") or head.headers.get("user-agent") or ""
    product, version, _ = split_product(agent)
    return Match(
        service="sip", product=product or None, version=version, extra=f"status {status.group(1)}"
    )


SIP = Matcher(name="sip", judge=_judge, max_bytes=8192)

SIP_OPTIONS_TCP = Probe(
    name="sip-options-tcp",
    build=lambda host: options_request(host, "TCP"),
    matchers=("sip",),
    services=("sip", "sips"),
)
SIP_OPTIONS_UDP = Probe(
    name="sip-options-udp",
    build=lambda host: options_request(host, "UDP"),
    matchers=("sip",),
    services=("sip",),
    transport="udp",
)
