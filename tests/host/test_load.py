"""Load and hostile clients against a `portkit serve` process (bounded, loopback only)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.host._helpers import ServeProcess, addresses

ECHO_PUSHERS = 5
CONNECTIONS = {"web": 400, "echo": 400, "fwd": 200}  # 1,000 at once


@pytest.fixture(autouse=True)
def enough_descriptors() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 4096
    if soft < want:
        if hard != resource.RLIM_INFINITY and hard < want:
            pytest.skip(f"needs {want} file descriptors, the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def start(tmp: Path, **web_options: Any) -> tuple[ServeProcess, dict[str, Any]]:
    root = tmp / "public"
    root.mkdir()
    (root / "index.html").write_text("<h1>load</h1>\n")
    (root / "big.bin").write_bytes(b"\x5a" * (1024 * 1024))
    web = {"kind": "web", "listen": "127.0.0.1:0", "root": "public", **web_options}
    text = "\n".join(
        [
            "[host]\ngrace = 5\n",
            "[apps.web]",
            *(f"{k} = {json.dumps(v)}" for k, v in web.items()),
            # echo takes 400 clients and, through fwd, 200 more, all from 127.0.0.1: more
            # than the default per-source half of its 1,024 connections.
            '\n[apps.echo]\nkind = "echo"\nlisten = "127.0.0.1:0"\nper_source = 1024\n',
        ]
    )
    config = tmp / "serve.toml"
    config.write_text(text)
    serve = ServeProcess(config, tmp)
    doc = serve.start()
    echo_port = addresses(doc, "echo")[0][1]
    # A forward to the echo application: a second config, reloaded in (SIGHUP).
    config.write_text(
        text
        + f'\n[apps.fwd]\nkind = "forward"\nlisten = "127.0.0.1:0"\nto = "127.0.0.1:{echo_port}"\n'
        + "max_connections = 1000\n"
    )
    import signal

    serve.signal(signal.SIGHUP)
    serve.wait_notify("RELOADING=1")
    serve.wait_notify("READY=1")
    status = json.loads((tmp / "status.json").read_text())
    return serve, status


async def http_get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str) -> bytes:
    writer.write(f"GET {path} HTTP/1.1\r\nHost: load\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    return head.split(b" ")[1] + b" " + await reader.readexactly(length)


async def thousand_connections(status: dict[str, Any]) -> dict[str, int]:
    conns: list[tuple[str, asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:
        for app, count in CONNECTIONS.items():
            address = addresses(status, app)[0]
            opened = await asyncio.gather(
                *(asyncio.open_connection(*address) for _ in range(count))
            )
            conns.extend((app, r, w) for r, w in opened)
        # All 1,000 are open at once; now every one does a round trip.

        async def round_trip(
            index: int, app: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
        ) -> str:
            if app == "web":
                return (await http_get(reader, writer, "/")).decode()
            line = f"{app} {index}\n".encode()
            writer.write(line)
            assert await reader.readline() == line
            return "echoed"

        results = await asyncio.gather(*(round_trip(i, *c) for i, c in enumerate(conns)))
    finally:
        for _app, _reader, writer in conns:
            writer.close()
        for _app, _reader, writer in conns:
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
    tally: dict[str, int] = {}
    for result in results:
        tally[result] = tally.get(result, 0) + 1
    return tally


def test_a_thousand_concurrent_connections_across_applications(tmp_path: Path) -> None:
    serve, status = start(tmp_path)
    with serve:
        tally = asyncio.run(thousand_connections(status))
        assert tally == {"200 <h1>load</h1>\n": 400, "echoed": 600}


async def slowloris_and_others(status: dict[str, Any]) -> tuple[int, int]:
    address = addresses(status, "web")[0]

    async def slowloris() -> bool:
        reader, writer = await asyncio.open_connection(*address)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")
        try:
            for i in range(600):  # at most 600 header bytes, one per 50 ms: bounded
                writer.write(b"X-a: b\r\n"[i % 8 : i % 8 + 1])
                await writer.drain()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.05):
                        if await reader.read(1) == b"":
                            return True  # the server cut us off
            return False
        except ConnectionError:
            return True
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def normal() -> int:
        served = 0
        for _ in range(20):
            reader, writer = await asyncio.open_connection(*address)
            try:
                if (await http_get(reader, writer, "/")).startswith(b"200"):
                    served += 1
            finally:
                writer.close()
                await writer.wait_closed()
        return served

    lorises = [asyncio.create_task(slowloris()) for _ in range(50)]
    served = sum(await asyncio.gather(*(normal() for _ in range(10))))
    cut = sum(await asyncio.gather(*lorises))
    return served, cut


def test_slowloris_is_cut_off_without_starving_others(tmp_path: Path) -> None:
    serve, status = start(tmp_path, header_timeout=1.0)
    with serve:
        served, cut = asyncio.run(slowloris_and_others(status))
    assert served == 200  # every normal request answered while 50 lorises trickled
    assert cut == 50  # and every loris was disconnected before running out of bytes


async def never_read(status: dict[str, Any], pid: int) -> tuple[int, int, int]:
    process = psutil.Process(pid)
    before = process.memory_info().rss
    writers = []
    # 20 clients each pipeline 100 requests for a 1 MiB file and never read (2 GB asked).
    for _ in range(20):
        _reader, writer = await asyncio.open_connection(*addresses(status, "web")[0])
        writer.write(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n" * 100)
        writers.append(writer)
    # 5 clients push into echo and never read what comes back, until it stops taking.
    pushed = 0
    for _ in range(ECHO_PUSHERS):
        _reader, writer = await asyncio.open_connection(*addresses(status, "echo")[0])
        writers.append(writer)
        for _ in range(64):  # at most 64 MiB per client
            writer.write(b"\0" * (1024 * 1024))
            try:
                async with asyncio.timeout(1.0):
                    await writer.drain()
            except TimeoutError:
                break  # the server stopped reading: backpressure reached us
            pushed += 1024 * 1024
    after = process.memory_info().rss
    for writer in writers:
        writer.transport.abort()
    return before, after, pushed


def test_a_client_that_never_reads_does_not_grow_memory(tmp_path: Path) -> None:
    serve, status = start(tmp_path)
    with serve:
        assert serve.proc is not None
        before, after, pushed = asyncio.run(never_read(status, serve.proc.pid))
    assert pushed < ECHO_PUSHERS * 64 * 1024 * 1024  # echo pushed back: it did not read everything
    assert after - before < 64 * 1024 * 1024, (before, after)
