"""memcached via its text protocol's ``version`` command, over TCP and UDP.

memcached's protocol.txt, "General-purpose commands": ``version`` answers
``VERSION <version>\\r\\n``. "UDP protocol": over UDP every datagram starts with an
8-byte frame header (request ID, sequence number, total datagrams, reserved, each 16
bits, big-endian), then the same text.
"""

from __future__ import annotations

import re

from portkit.proto._match import NEED_MORE, Match, Matcher, NoMatch, Probe, Verdict, expect_prefix

__all__ = ["MEMCACHED", "MEMCACHED_UDP", "MEMCACHED_VERSION", "MEMCACHED_VERSION_UDP"]

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

# Request ID "pk", datagram 0 of 1 (protocol.txt, "UDP protocol").
_FRAME = b"pk\x00\x00\x00\x01\x00\x00"


def _judge_udp(data: bytes, final: bool) -> Verdict:
    if len(data) < len(_FRAME):
        return NoMatch(reason="shorter than a frame header") if final else NEED_MORE
    # The reply carries our request ID; it is datagram 0 of at least 1; reserved is 0.
    if data[:2] != _FRAME[:2] or data[2:4] != b"\x00\x00" or data[4:6] == b"\x00\x00":
        return NoMatch(reason="not a memcached UDP frame")
    if data[6:8] != b"\x00\x00":
        return NoMatch(reason="reserved bytes set")
    return _judge(data[len(_FRAME) :], final)


MEMCACHED_UDP = Matcher(name="memcached-udp", judge=_judge_udp, max_bytes=136)

MEMCACHED_VERSION = Probe(
    name="memcached-version",
    build=lambda host: b"version\r\n",
    matchers=("memcached", "redis"),
    services=("memcache", "memcached"),
)
MEMCACHED_VERSION_UDP = Probe(
    name="memcached-version-udp",
    build=lambda host: _FRAME + b"version\r\n",
    matchers=("memcached-udp",),
    services=("memcache", "memcached"),
    transport="udp",
)
