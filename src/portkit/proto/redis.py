"""Redis (and compatible: Valkey, KeyDB) via ``PING`` and ``INFO server``.

RESP (the Redis serialization protocol): ``+`` simple string, ``-`` error, ``$n`` bulk
string of n bytes, each element ended by CRLF. A server that needs a password answers
``-NOAUTH``; one in protected mode answers ``-DENIED``; both still say Redis.
"""

from __future__ import annotations

import re

from portkit.proto._match import NEED_MORE, Match, Matcher, NoMatch, Probe, Verdict, expect_prefix

__all__ = ["REDIS", "REDIS_PING"]

MAX_INFO = 8192

_VERSION = re.compile(rb"^(redis|valkey)_version:([\w.]+)\r?$", re.MULTILINE)
_ERRORS = (b"-NOAUTH", b"-DENIED", b"-ERR", b"-WRONGPASS")


def _judge(data: bytes, final: bool) -> Verdict:
    early = expect_prefix(data, [b"+PONG\r\n", *_ERRORS])
    if early is not None:
        return early
    end = data.find(b"\r\n")
    if end < 0:
        return NoMatch(reason="reply line too long") if len(data) > 512 else NEED_MORE
    first = data[:end]
    if first.startswith(b"-NOAUTH") or first.startswith(b"-DENIED"):
        return Match(service="redis", product="Redis", extra="authentication required")
    # A generic error is only Redis if the INFO reply that follows says so.
    if first.startswith(b"-") and not re.fullmatch(rb"-[A-Z]+ .*", first):
        return NoMatch(reason="not a RESP error")
    rest = data[end + 2 :]
    if not rest:
        return NoMatch(reason="no INFO reply") if final else NEED_MORE
    if rest.startswith(b"-"):
        if first == b"+PONG":
            return Match(service="redis", product="Redis", confidence=8)
        return NoMatch(reason="errors only")
    head = rest.find(b"\r\n")
    if head < 0:
        return NEED_MORE if len(rest) < 32 and not final else NoMatch(reason="bad bulk header")
    size = rest[1:head]
    if not rest.startswith(b"$") or not size.isdigit():
        return NoMatch(reason="INFO reply is not a bulk string")
    body = rest[head + 2 : head + 2 + min(int(size), MAX_INFO)]
    if len(body) < min(int(size), MAX_INFO) and not final:
        return NEED_MORE
    m = _VERSION.search(body)
    if m is None:
        if first == b"+PONG":
            return Match(service="redis", product="Redis", confidence=8)
        return NoMatch(reason="INFO without a version")
    product = "Valkey" if m.group(1) == b"valkey" or b"server_name:valkey" in body else "Redis"
    return Match(service="redis", product=product, version=m.group(2).decode("ascii"))


REDIS = Matcher(name="redis", judge=_judge, max_bytes=MAX_INFO + 600)

REDIS_PING = Probe(
    name="redis-ping",
    build=lambda host: b"*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n",
    matchers=("redis",),
    services=("redis",),
)
