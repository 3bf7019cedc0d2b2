"""Apache ZooKeeper, via the ``srvr`` four-letter-word command.

ZooKeeper Administrator's Guide, "The Four Letter Words": a client sends four ASCII
letters instead of a session request; the server answers in text and closes. ``srvr``
is the one word allowed by default since 3.5 (``4lw.commands.whitelist``); it answers
``Zookeeper version: <version>, built on <date>`` and statistics. A word outside the
whitelist is answered ``<word> is not executed because it is not in the whitelist.``,
which still names ZooKeeper.
"""

from __future__ import annotations

import re

from portkit.proto._match import NEED_MORE, Match, Matcher, NoMatch, Probe, Verdict, expect_prefix

__all__ = ["ZOOKEEPER", "ZOOKEEPER_SRVR"]

_VERSION = re.compile(rb"^Zookeeper version: (\d+\.\d+\.\d+)[^,\n]*, built on")
_REFUSED = re.compile(rb"^[a-z]{4} is not executed because it is not in the whitelist\.")
_MODE = re.compile(rb"^Mode: (\w+)$", re.MULTILINE)


def _judge(data: bytes, final: bool) -> Verdict:
    early = expect_prefix(data, [b"Zookeeper version: ", b"srvr is not executed"])
    if early is not None:
        return early
    end = data.find(b"\n")
    if end < 0:
        return NoMatch(reason="line too long") if len(data) > 200 or final else NEED_MORE
    line = data[:end]
    if _REFUSED.match(line):
        return Match(service="zookeeper", product="Apache ZooKeeper", extra="srvr not allowed")
    found = _VERSION.match(line)
    if found is None:
        return NoMatch(reason="not a srvr answer")
    if not final:
        return NEED_MORE  # the statistics end when the server closes
    mode = _MODE.search(data)
    return Match(
        service="zookeeper",
        product="Apache ZooKeeper",
        version=found.group(1).decode("ascii"),
        extra=f"mode {mode.group(1).decode('ascii')}" if mode else None,
    )


ZOOKEEPER = Matcher(name="zookeeper", judge=_judge, max_bytes=2048)

ZOOKEEPER_SRVR = Probe(
    name="zookeeper-srvr",
    build=lambda host: b"srvr",
    matchers=("zookeeper",),
    services=("zookeeper", "eforward"),
)
