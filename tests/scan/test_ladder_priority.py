"""The generic ladder's order is a priority: when a server answers two probes of one
window, the earlier probe names it even if the later probe's answer arrives first."""

from __future__ import annotations

import asyncio
import contextlib

from portkit.proto.socks import SOCKS4_CONNECT, SOCKS5_GREETING
from portkit.scan._exchange import Ladder as _Ladder
from portkit.scan._identify import _first_match

HOST = "127.0.0.1"


async def _both_socks(late: float) -> asyncio.Server:
    """A proxy that speaks SOCKS 5 (answering after ``late`` seconds) and SOCKS 4 (at once),
    like Dante, which answers both."""

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            first = await reader.read(64)
            if first[:1] == b"\x05":  # RFC 1928 section 3: version 5, its methods
                await asyncio.sleep(late)
                writer.write(b"\x05\x00")  # no authentication required
                await writer.drain()
                await reader.read()  # until the client hangs up
            elif first[:1] == b"\x04":  # SOCKS 4 CONNECT: refused, and the connection closed
                writer.write(b"\x00\x5b" + bytes(6))  # request rejected or failed
                await writer.drain()
        writer.close()

    return await asyncio.start_server(session, HOST, 0)


async def test_the_earlier_probe_wins_even_when_its_answer_comes_later() -> None:
    server = await _both_socks(late=0.3)
    port = server.sockets[0].getsockname()[1]
    async with server:
        ladder = _Ladder(
            host=HOST, port=port, expected=None, deadline=asyncio.get_running_loop().time() + 5
        )
        found = await asyncio.wait_for(_first_match(ladder, [SOCKS5_GREETING, SOCKS4_CONNECT]), 10)
    assert found is not None
    assert found.service == "socks5"
    assert found.probe == SOCKS5_GREETING.name
