"""rsync daemons, recognised by the greeting they send first.

The rsync daemon protocol (rsync's ``clientserver.c``, documented in ``rsyncd.conf(5)``
and the ``rsync`` man page "CONNECTING TO AN RSYNC DAEMON"): on connect the server sends
``@RSYNCD: <protocol>[.<sub>][ <checksum names>]\\n``; a refused client gets
``@ERROR: <text>\\n`` first.
"""

from __future__ import annotations

import re

from portkit.proto._match import (
    NEED_MORE,
    Match,
    Matcher,
    NoMatch,
    Verdict,
    expect_prefix,
    first_line,
)

__all__ = ["RSYNC"]

_GREETING = re.compile(rb"^@RSYNCD: (\d+)(?:\.(\d+))?(?: (.*))?$")


def _judge(data: bytes, final: bool) -> Verdict:
    early = expect_prefix(data, [b"@RSYNCD: ", b"@ERROR: "])
    if early is not None:
        return early
    line = first_line(data, limit=256)
    if line is None:
        return NoMatch(reason="incomplete greeting") if final else NEED_MORE
    if line.startswith(b"@ERROR: "):
        return Match(service="rsync", extra=line[8:].decode("utf-8", "replace")[:120])
    found = _GREETING.match(line)
    if found is None:
        return NoMatch(reason="not an rsync greeting")
    protocol = found.group(1).decode("ascii")
    extra = f"protocol version {protocol}"
    if found.group(3):
        extra += f"; {found.group(3).decode('ascii', 'replace')[:80]}"
    return Match(service="rsync", extra=extra)


RSYNC = Matcher(name="rsync", judge=_judge, max_bytes=258)
