"""The Python side of connect's netcat habits: crlf(), converse_udp() and listen()."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable

import pytest

from portkit import ConnectionRefused, ConnectTimeout, UsageError
from portkit.client import Timeouts, converse, converse_udp, crlf, free_ports, listen


async def _chunks(chunks: Iterable[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def _collect(source: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in source])


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        ([b"a\nb\n"], b"a\r\nb\r\n"),
        ([b"a\r\nb"], b"a\r\nb"),  # an existing CRLF stays
        ([b"a\r", b"\nb\n"], b"a\r\nb\r\n"),  # a CRLF split across two reads stays one
        ([b"a\n", b"\n"], b"a\r\n\r\n"),
        ([b"\n", b"", b"x"], b"\r\nx"),
    ],
)
async def test_crlf(chunks: list[bytes], expected: bytes) -> None:
    assert await _collect(crlf(_chunks(chunks))) == expected


async def _late(data: bytes, started: asyncio.Event) -> AsyncIterator[bytes]:
    """Yield ``data`` only once the other side is running."""
    await started.wait()
    yield data


async def test_udp_listen_and_converse_talk_to_each_other() -> None:
    bound: asyncio.Future[tuple[str, int]] = asyncio.get_running_loop().create_future()
    heard: list[bytes] = []
    replies: list[bytes] = []
    peer_seen = asyncio.Event()
    server = asyncio.ensure_future(
        listen(
            0,
            _late(b"pong", peer_seen),
            heard.append,
            transport="udp",
            linger=0.3,
            on_listening=bound.set_result,
            on_connect=lambda _peer, _tls: peer_seen.set(),
        )
    )
    host, port = await asyncio.wait_for(bound, 30)
    client = await converse_udp(host, port, _chunks([b"ping"]), replies.append, linger=2.0)
    served = await asyncio.wait_for(server, 30)
    assert heard == [b"ping"]
    assert replies == [b"pong"]
    assert (client.sent, client.received) == (4, 4)
    assert (served.sent, served.received) == (4, 4)


async def test_tcp_listen_and_converse_half_close_both_ways() -> None:
    bound: asyncio.Future[tuple[str, int]] = asyncio.get_running_loop().create_future()
    heard: list[bytes] = []
    replies: list[bytes] = []
    server = asyncio.ensure_future(
        listen(0, _chunks([b"from the listener"]), heard.append, on_listening=bound.set_result)
    )
    host, port = await asyncio.wait_for(bound, 30)
    client = await converse(host, port, _chunks([b"from the client"]), replies.append)
    served = await asyncio.wait_for(server, 30)
    assert b"".join(heard) == b"from the client"
    assert b"".join(replies) == b"from the listener"
    assert client.sent == served.received == 15


async def test_udp_to_a_closed_port_is_refused() -> None:
    port = free_ports(transport="udp")[0]
    with pytest.raises(ConnectionRefused, match=f"127.0.0.1:{port}"):
        await converse_udp("127.0.0.1", port, _chunks([b"x"]), lambda _: None)


async def test_listen_waits_no_longer_than_idle() -> None:
    with pytest.raises(ConnectTimeout, match=r"no connection to 127\.0\.0\.1:"):
        await listen(0, _chunks([]), lambda _: None, timeouts=Timeouts(idle=0.2))


async def test_listen_rejects_a_bad_transport() -> None:
    with pytest.raises(UsageError, match="'sctp'"):
        await listen(0, _chunks([]), lambda _: None, transport="sctp")
