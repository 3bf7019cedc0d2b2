"""Arbitrary bytes into every matcher: a verdict always, never an exception, and the same
verdict whether the bytes come at once or one at a time."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from portkit.proto import MATCHERS, Match, NeedMore, NoMatch, Reader

FIXTURES = Path(__file__).parent / "fixtures"
SAMPLES = [p.read_bytes() for p in sorted(FIXTURES.glob("*.bin"))]
DATAGRAM_MATCHERS = (
    "dns-udp", "ntp", "snmp", "tftp", "stun", "coap", "netbios-ns", "radius", "mdns", "ike",
    "ssdp", "quic", "dtls", "llmnr",
)  # fmt: skip
STREAM_MATCHERS = [m for name, m in MATCHERS.items() if name not in DATAGRAM_MATCHERS]

# Real answers cut and spliced with noise find more corners than noise alone.
mutated = st.builds(
    lambda sample, cut, noise: sample[:cut] + noise,
    st.sampled_from(SAMPLES),
    st.integers(min_value=0, max_value=600),
    st.binary(max_size=64),
)
# Runs of protocol tokens reach states random bytes rarely do (a greeting then garbage, a
# head without its body, a negotiation cut in the middle).
TOKENS = [
    b"\r\n", b"\n", b"220 ", b"220-", b"250-PIPELINING", b"215 ", b"HTTP/1.1 200 OK",
    b"Content-Length: 5", b"Content-Type: application/json", b"\r\n\r\n", b"{", b"}",
    b"\xff\xfd\x18", b"\xff\xfb", b"\xff", b"SSH-2.0-", b"+OK", b"* OK", b"-ERR", b"$5",
    b"+PONG", b"RFB 003.008\n", b"AMQP", b"\x01\x00\x00", b"\x00\x00\x00", b"E", b"R",
    b"\x16\x03\x03", b"\x15\x03\x01\x00\x02", b"\x30\x0c\x02\x01\x01", b"VERSION 1.2",
    b"RTSP/1.0 200", b"SIP/2.0 200", b"\x03\x00\x00\x13", b"\xfeSMB", b"FTP", b"ESMTP",
    b":irc.test ", b"NOTICE * :x", b" 004 nick irc.test ngircd-26.1 a b", b"@RSYNCD: 31.0",
    b"( success ( 2 2 ( ) ( ", b") ) ) ", b"200 news ", b"101 Capability list:", b"VERSION 2",
    b".\r\n", b"<?xml version='1.0'?>", b"<stream:stream xmlns='jabber:client' ",
    b"xmlns:stream='http://etherx.jabber.org/streams'>", b"65535 , 113 : ERROR : NO-USER",
    b"OK 9\r\n", b"---\ncurrent-jobs-ready: 0\nversion: 1.12\n", b"\x00\x00\x11\x11",
    b"name rabbit at port 25672\n", b"\x01\x00\x0b\x00\x00\x00", b"\x05\x00",
    b"Server: squid/5.7", b"Server: CUPS/2.4 IPP/2.1", b'{"etcdserver":"3.4.23",',
    b"Zookeeper version: 3.8.0-x, built on y\n", b"\x04\x01\x00\x2f", b"\xff", b"pkka",
    b"\x84\x00pk\x06", b"\x00\x02\x00\x0bCQL_VERSION", b"002eERR ", b"0000", b"\x00\x1a\x40",
    b"portkit!", b"\x00\x00\x00\x00",
]  # fmt: skip
tokens = st.lists(st.sampled_from(TOKENS), max_size=25).map(b"".join)
anything = st.one_of(st.binary(max_size=2048), mutated, tokens)


@settings(max_examples=2000, deadline=None)
@given(anything, st.booleans())
def test_every_matcher_returns_a_verdict(data: bytes, final: bool) -> None:
    for matcher in MATCHERS.values():
        verdict = matcher(data, final)
        assert isinstance(verdict, Match | NoMatch | NeedMore)
        if final:
            assert not isinstance(verdict, NeedMore)


@settings(max_examples=2000, deadline=None)
@given(anything)
def test_byte_by_byte_agrees_with_all_at_once(data: bytes) -> None:
    data = data[:700]  # byte-at-a-time judging is quadratic; this keeps it quick
    for matcher in STREAM_MATCHERS:
        whole = Reader((matcher,))
        expected = whole.feed(data) or whole.finish()
        drip = Reader((matcher,))
        found = None
        for i in range(len(data)):
            found = drip.feed(data[i : i + 1])
            if found is not None:
                break
        found = found or drip.finish()
        assert found == expected, matcher.name


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=1, max_size=4096), st.integers(min_value=1, max_value=64))
def test_reader_keeps_at_most_its_cap(data: bytes, cap: int) -> None:
    reader = Reader(tuple(STREAM_MATCHERS), cap=cap)
    reader.feed(data)
    reader.feed(data)
    assert len(reader.data) <= cap
