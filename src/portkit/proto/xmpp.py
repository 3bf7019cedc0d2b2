"""XMPP servers, recognised by the stream header they answer ours with.

RFC 6120 §4.2 and §4.7: a client opens a stream with an ``<stream:stream>`` element in
the ``http://etherx.jabber.org/streams`` namespace, default namespace ``jabber:client``
(``jabber:server`` between servers); the server answers with its own stream header
(and then ``<stream:features>``, §4.3.2), or a stream error (§4.9) inside one.
"""

from __future__ import annotations

import re

from portkit.proto._match import NEED_MORE, Match, Matcher, NoMatch, Probe, Verdict

__all__ = ["XMPP", "XMPP_STREAM"]

MAX_HEADER = 2048

_STREAMS_NS = b"http://etherx.jabber.org/streams"
_OPEN = re.compile(rb"<(\w+):stream\b([^>]*)>", re.DOTALL)
_ATTR = re.compile(rb"""([\w:]+)\s*=\s*(?:'([^']*)'|"([^"]*)")""")


def _judge(data: bytes, final: bool) -> Verdict:
    text = data.lstrip()
    if text.startswith(b"<?xml"):
        end = text.find(b"?>")
        if end < 0:
            return NoMatch(reason="declaration too long") if final or len(text) > 200 else NEED_MORE
        text = text[end + 2 :].lstrip()
    if not text:
        return NoMatch(reason="no stream header") if final else NEED_MORE
    if not text.startswith(b"<"):
        return NoMatch(reason="not XML")
    found = _OPEN.match(text)
    if found is None:
        close = text.find(b">")
        if close >= 0 or len(text) > MAX_HEADER:
            return NoMatch(reason="not a stream header")
        return NoMatch(reason="incomplete stream header") if final else NEED_MORE
    attrs = {m.group(1): (m.group(2) or m.group(3) or b"") for m in _ATTR.finditer(found.group(2))}
    prefix = found.group(1)
    if attrs.get(b"xmlns:" + prefix) != _STREAMS_NS:
        return NoMatch(reason="not the XMPP streams namespace")
    namespace = attrs.get(b"xmlns", b"")
    service = "xmpp-server" if namespace == b"jabber:server" else "xmpp-client"
    extra = []
    if attrs.get(b"from"):
        extra.append(f"domain {attrs[b'from'].decode('utf-8', 'replace')[:80]}")
    if attrs.get(b"version"):
        extra.append(f"stream version {attrs[b'version'].decode('ascii', 'replace')[:8]}")
    return Match(service=service, extra="; ".join(extra) or None)


XMPP = Matcher(name="xmpp", judge=_judge, max_bytes=MAX_HEADER)


def _stream_header(host: str) -> bytes:
    # §4.7.2: "to" names the service's domain; for an address the host itself.
    return (
        "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
        f"xmlns:stream='http://etherx.jabber.org/streams' to='{host}' version='1.0'>"
    ).encode("utf-8", "replace")


XMPP_STREAM = Probe(
    name="xmpp-stream",
    build=_stream_header,
    matchers=("xmpp",),
    services=("xmpp-client", "xmpp-server", "jabber", "xmpp"),
)
