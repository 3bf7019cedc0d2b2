"""RTSP servers via ``OPTIONS *`` (RFC 2326 §10.1; RFC 7826 §13.1 for RTSP 2.0).

Responses have an HTTP-like head: ``RTSP/1.0 200 OK``, ``CSeq`` echoed, ``Server``
naming the product.
"""

from __future__ import annotations

import re

from portkit.proto._match import Match, Matcher, Probe, Verdict
from portkit.proto._text import split_product, status_head

__all__ = ["RTSP", "RTSP_OPTIONS"]

_STATUS = re.compile(r"^RTSP/(\d)\.(\d) (\d{3})")


def _judge(data: bytes, final: bool) -> Verdict:
    got = status_head(
        data, final, prefix=b"RTSP/", status=_STATUS, not_status="not an RTSP status line"
    )
    if not isinstance(got, tuple):
        return got
    head, status = got
    product, version, _ = split_product(head.headers.get("server", ""))
    return Match(
        service="rtsp", product=product or None, version=version, extra=f"status {status.group(3)}"
    )


RTSP = Matcher(name="rtsp", judge=_judge, max_bytes=8192)

RTSP_OPTIONS = Probe(
    name="rtsp-options",
    build=lambda host: b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: portkit\r\n\r\n",
    matchers=("rtsp", "http"),
    services=("rtsp",),
)
