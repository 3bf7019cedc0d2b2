"""memcached via its text protocol's ``version`` command.

memcached's protocol.txt, "General-purpose commands": ``version`` answers
``VERSION <version>\\r\\n``.
"""

from __future__ import annotations

import re

from portkit.proto._match import NEED_MORE, Match, Matcher, NoMatch, Probe, Verdict, expect_prefix

__all__ = ["MEMCACHED", "MEMCACHED_VERSION"]

_LINE = re.compile(rb"^VERSION ([\w.+-]{1,64})\r\n")


def _judge(data: bytes, final: bool) -> Verdict:
    early = expect_prefix(data, [b"VERSION "])
    if early is not None:
        return early
    if b"\n" not in data[:100]:
        return NoMatch(reason="version line too long") if len(data) >= 100 else NEED_MORE
    m = _LINE.match(data)
    if m is None:
        return NoMatch(reason="malformed version line")
    return Match(service="memcache", product="memcached", version=m.group(1).decode("ascii"))


MEMCACHED = Matcher(name="memcached", judge=_judge, max_bytes=128)

MEMCACHED_VERSION = Probe(
    name="memcached-version",
    build=lambda host: b"version\r\n",
    matchers=("memcached", "redis"),
    services=("memcache", "memcached"),
)
