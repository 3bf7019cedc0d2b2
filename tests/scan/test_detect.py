"""--detect: open TCP ports go to identification, bounded, and come back identified.

The real identification lives in ``portkit.scan._identify`` (its own tests); here a
small stand-in that reads the server's banner keeps these tests about the engine.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from portkit.scan._model import Identification, PortState
from portkit.scan._scan import plan_scan, scan_batches

# Each test runs with no names kept on disk (the first scan after an install) and with.
pytestmark = pytest.mark.usefixtures("names_cache")


async def read_banner(host: str, port: int, *, expected: str | None = None) -> Identification:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        banner = await reader.readline()
    finally:
        writer.close()
        await writer.wait_closed()
    service = "ssh" if banner.startswith(b"SSH-") else None
    product = banner[8:].split(b"_")[0].decode() if service else None
    return Identification(service=service, product=product, evidence=banner, confidence=10)


@pytest.fixture
async def banner_servers() -> AsyncIterator[list[int]]:
    async def greet(_r: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"SSH-2.0-OpenSSH_9.2p1 Debian\r\n")
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    servers = [await asyncio.start_server(greet, "127.0.0.2", 0) for _ in range(6)]
    try:
        yield [s.sockets[0].getsockname()[1] for s in servers]
    finally:
        for s in servers:
            s.close()
            await s.wait_closed()


async def test_open_ports_come_back_identified(banner_servers: list[int]) -> None:
    spec = ",".join(map(str, [*banner_servers, 1]))
    plan = await plan_scan("127.0.0.2", spec)
    results = [r async for batch in scan_batches(plan, detect=read_banner) for r in batch.results]
    opened = [r for r in results if r.state is PortState.OPEN]
    assert sorted(r.port for r in opened) == sorted(banner_servers)
    for r in opened:
        assert r.identified is not None
        assert r.identified.service == "ssh"
        assert r.identified.product == "OpenSSH"
    closed = next(r for r in results if r.port == 1)
    assert closed.identified is None


async def test_identification_concurrency_is_bounded(banner_servers: list[int]) -> None:
    running = 0
    most = 0

    async def counting(host: str, port: int, *, expected: str | None = None) -> Identification:
        nonlocal running, most
        running += 1
        most = max(most, running)
        try:
            return await read_banner(host, port, expected=expected)
        finally:
            running -= 1

    plan = await plan_scan("127.0.0.2", ",".join(map(str, banner_servers)))
    results = [
        r
        async for batch in scan_batches(plan, detect=counting, detect_concurrency=2)
        for r in batch.results
    ]
    assert len(results) == len(banner_servers)
    assert 1 <= most <= 2


async def test_expected_name_is_passed_to_identification() -> None:
    seen: list[tuple[int, str | None]] = []

    async def remember(host: str, port: int, *, expected: str | None = None) -> Identification:
        seen.append((port, expected))
        return Identification(service=None)

    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.2", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        plan = await plan_scan("127.0.0.2", str(port))
        [r async for batch in scan_batches(plan, detect=remember) for r in batch.results]
    finally:
        server.close()
        await server.wait_closed()
    from portkit.registry import default_registry

    assert seen == [(port, default_registry().service_name(port, "tcp"))]


async def test_a_port_that_closes_before_identification_is_reported_not_raised() -> None:
    async def greet(_r: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(greet, "127.0.0.2", 0)
    port = server.sockets[0].getsockname()[1]
    plan = await plan_scan("127.0.0.2", str(port))

    async def close_then_identify(
        host: str, port: int, *, expected: str | None = None
    ) -> Identification:
        # The listener goes away after the scan saw it open: identification is refused.
        server.close()
        await server.wait_closed()
        from portkit.scan._identify import identify

        return await identify(host, port, expected=expected, budget=2.0)

    (result,) = [
        r async for batch in scan_batches(plan, detect=close_then_identify) for r in batch.results
    ]
    assert result.state is PortState.OPEN
    assert result.identified is not None
    assert result.identified.service is None
    assert result.identified.extra is not None
    assert "gone before identification" in result.identified.extra
