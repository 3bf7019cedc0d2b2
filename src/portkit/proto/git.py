"""git daemons (``git://``), via a request for a repository that should not exist.

Git's pack protocol (``Documentation/technical/pack-protocol.txt``, "git Transport"):
the client sends one pkt-line ``git-upload-pack /path\\0host=name\\0``; a pkt-line is
four hex digits giving its length (the four included) and the data, ``0000`` a flush.
A daemon answers with the reference advertisement (``<40 hex> <ref>\\0<capabilities>``,
or ``version 2``), with ``ERR <message>`` (``--informative-errors``), or closes without
a word -- which names nothing.
"""

from __future__ import annotations

import re

from portkit.proto._match import NEED_MORE, Match, Matcher, NoMatch, Probe, Verdict

__all__ = ["GIT", "GIT_UPLOAD_PACK"]

_LENGTH = re.compile(rb"[0-9a-f]{0,4}")
_REF = re.compile(rb"^[0-9a-f]{40} \S+")


def _request(host: str) -> bytes:
    body = f"git-upload-pack /portkit-probe.git\0host={host}\0".encode("utf-8", "replace")
    return f"{len(body) + 4:04x}".encode() + body


def _judge(data: bytes, final: bool) -> Verdict:
    head = data[:4]
    if not _LENGTH.fullmatch(head):
        return NoMatch(reason="not a pkt-line")
    if len(data) < 4:
        return NoMatch(reason="short") if final else NEED_MORE
    size = int(head, 16)
    if size == 0:
        # A flush alone: an empty advertisement, and then the daemon waits or closes.
        if len(data) > 4:
            return NoMatch(reason="bytes after the flush")
        return Match(service="git", extra="empty repository", confidence=7) if final else NEED_MORE
    if size < 4 or size > 65520:
        return NoMatch(reason="bad pkt-line length")
    if len(data) < size:
        return NoMatch(reason="short pkt-line") if final else NEED_MORE
    line = data[4:size]
    if line.startswith(b"ERR "):
        return Match(service="git", extra=line[4:].decode("utf-8", "replace").strip()[:100])
    if line.startswith(b"version 2") or _REF.match(line):
        agent = re.search(rb"agent=(\S+)", line)
        version = None
        if agent and agent.group(1).startswith(b"git/"):
            version = agent.group(1)[4:].decode("ascii", "replace")
        return Match(service="git", product="git" if version else None, version=version)
    return NoMatch(reason="not a git answer")


GIT = Matcher(name="git", judge=_judge, max_bytes=65520)

GIT_UPLOAD_PACK = Probe(
    name="git-upload-pack",
    build=_request,
    matchers=("git",),
    services=("git",),
)
