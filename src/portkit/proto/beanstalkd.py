"""beanstalkd work queues, via the ``stats`` command.

beanstalkd's ``doc/protocol.txt`` ("Other Commands", ``stats``): the reply is
``OK <bytes>\\r\\n`` then a YAML dictionary of that many bytes and ``\\r\\n``; its keys
include ``version``, ``pid`` and ``current-jobs-ready``.
"""

from __future__ import annotations

import re

from portkit.proto._match import NEED_MORE, Match, Matcher, NoMatch, Probe, Verdict, expect_prefix

__all__ = ["BEANSTALKD", "BEANSTALKD_STATS"]

MAX_STATS = 8192

_HEAD = re.compile(rb"^OK (\d{1,5})\r\n")
_VERSION = re.compile(rb"^version: \"?([\w.+-]+)\"?\r?$", re.MULTILINE)


def _judge(data: bytes, final: bool) -> Verdict:
    early = expect_prefix(data, [b"OK "])
    if early is not None:
        return early
    head = _HEAD.match(data)
    if head is None:
        if len(data) > 10 or b"\n" in data:
            return NoMatch(reason="not a stats reply")
        return NoMatch(reason="incomplete") if final else NEED_MORE
    size = int(head.group(1))
    body = data[head.end() : head.end() + size]
    if len(body) < min(size, MAX_STATS - 16):
        return NoMatch(reason="incomplete stats") if final else NEED_MORE
    if not body.startswith(b"---") or b"current-jobs-ready:" not in body:
        return NoMatch(reason="not beanstalkd's stats")
    found = _VERSION.search(body)
    return Match(
        service="beanstalkd",
        product="beanstalkd",
        version=found.group(1).decode("ascii") if found else None,
    )


BEANSTALKD = Matcher(name="beanstalkd", judge=_judge, max_bytes=MAX_STATS)

BEANSTALKD_STATS = Probe(
    name="beanstalkd-stats",
    build=lambda host: b"stats\r\n",
    matchers=("beanstalkd",),
    services=("beanstalkd",),
)
