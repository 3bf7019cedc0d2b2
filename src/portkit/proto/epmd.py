"""The Erlang Port Mapper Daemon, via a ``PORT_PLEASE2_REQ`` for a node it cannot know.

Erlang/OTP's distribution protocol (ERTS User's Guide, "Distribution Protocol", EPMD
Protocol): every request is a 2-byte big-endian length then the request.
``PORT_PLEASE2_REQ`` is the byte 122 (``z``) and a node name; the answer ``PORT2_RESP``
is the byte 119 (``w``) and a result: 0 and the node's port, type, protocol, versions and
name when it is registered, else a non-zero result alone, and epmd closes the connection.
(``NAMES_REQ`` would list every node, but at three bytes it cannot be told apart from an
echo of itself.)
"""

from __future__ import annotations

from portkit.proto._match import NEED_MORE, Match, Matcher, NoMatch, Probe, Verdict

__all__ = ["EPMD", "EPMD_PORT_PLEASE"]

NODE = b"portkit-probe"
_PORT2_RESP = 0x77


def _judge(data: bytes, final: bool) -> Verdict:
    if data[:1] not in (b"", bytes([_PORT2_RESP])):
        return NoMatch(reason="not a PORT2_RESP")
    if len(data) < 2:
        return NoMatch(reason="short reply") if final else NEED_MORE
    if data[1] != 0:
        if len(data) > 2:
            return NoMatch(reason="bytes after a failed lookup")
        if not final:
            return NEED_MORE  # epmd closes after the two bytes
        return Match(
            service="epmd", product="Erlang Port Mapper Daemon", extra="node not registered",
            confidence=8,
        )  # fmt: skip
    # Result 0: port (2), node type (1), protocol (1), highest and lowest version (2+2),
    # name length and name, extra length and extra.
    if len(data) < 12:
        return NoMatch(reason="short reply") if final else NEED_MORE
    name_len = int.from_bytes(data[10:12], "big")
    if data[12 : 12 + name_len] != NODE[:name_len] or len(data) < 12 + name_len:
        return NoMatch(reason="another node") if len(data) >= 12 + name_len or final else NEED_MORE
    port = int.from_bytes(data[2:4], "big")
    return Match(service="epmd", product="Erlang Port Mapper Daemon", extra=f"node port {port}")


EPMD = Matcher(name="epmd", judge=_judge, max_bytes=1024)


def _request(host: str) -> bytes:
    body = b"z" + NODE
    return len(body).to_bytes(2, "big") + body


EPMD_PORT_PLEASE = Probe(
    name="epmd-port-please",
    build=_request,
    matchers=("epmd",),
    services=("epmd",),
)
