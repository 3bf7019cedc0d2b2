"""Hostile peers: clients that never read, one address taking every slot, bursts.

Each test attacks a real host over loopback the way the attack it guards against does,
bounded in connections and time.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from portkit.host._app import ABORT_WAIT
from tests.host._helpers import ServeProcess, addresses, curl, eventually, running_host, url

BIG = 32 * 1024 * 1024  # far more than loopback buffers hold for one connection


def site(base: Path) -> Path:
    root = base / "public"
    root.mkdir()
    with (root / "big.bin").open("wb") as fh:
        fh.truncate(BIG)  # sparse: costs no disk
    (root / "small.txt").write_bytes(b"small and served\n")
    return root


def web(kind: str = "web", **options: object) -> str:
    extra = "".join(f"{key} = {value}\n" for key, value in options.items())
    return f'[apps.site]\nkind = "{kind}"\nlisten = "127.0.0.1:0"\nroot = "public"\n{extra}'


@contextlib.contextmanager
def never_reading(
    address: tuple[str, int], count: int, path: str = "/big.bin", source: str = "127.0.0.1"
) -> Iterator[list[socket.socket]]:
    """``count`` clients that ask for ``path`` and never read a byte of the answer."""
    clients = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fills at once
            if source != "127.0.0.1":
                sock.bind((source, 0))
            sock.settimeout(10)
            sock.connect(address)
            # A refused client may be reset before its request is written: fine.
            with contextlib.suppress(ConnectionError):
                sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            clients.append(sock)
        yield clients
    finally:
        for sock in clients:
            sock.close()


async def fetch_from(address: tuple[str, int], source: str, path: str) -> bytes:
    """One HTTP/1.1 GET from local address ``source``; the whole response."""
    reader, writer = await asyncio.open_connection(*address, local_addr=(source, 0))
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    try:
        return await reader.read()
    except ConnectionResetError:
        return b""  # refused
    finally:
        writer.close()
        with contextlib.suppress(ConnectionResetError):
            await writer.wait_closed()


@pytest.mark.parametrize("kind", ["web", "video"])
async def test_a_client_that_never_reads_is_dropped(
    tmp_path: Path, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    site(tmp_path)
    caplog.set_level(logging.INFO, logger="portkit.host.app.site")
    # One process (workers = 1): the log lines are read from this process's records.
    async with running_host(web(kind, send_timeout=0.5, workers=1), tmp_path) as host:
        with never_reading(host.bound("site")[0], 1):
            counters = host.apps["site"].counters
            await eventually(lambda: counters.connections_open == 1, "the client is served")
            await eventually(lambda: counters.connections_open == 0, "the client is dropped")
    assert "response not taken for 0.5s (send timeout)" in caplog.text


async def test_a_client_taking_too_little_is_dropped(tmp_path: Path) -> None:
    # It reads a little now and then, which a send timeout alone would accept forever.
    site(tmp_path)
    options = web(send_timeout=0.5, min_send_rate=10_000_000)
    async with running_host(options, tmp_path) as host:
        loop = asyncio.get_running_loop()
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.setblocking(False)
            await loop.sock_connect(sock, host.bound("site")[0])
            await loop.sock_sendall(sock, b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            counters = host.apps["site"].counters
            taken = 0
            with contextlib.suppress(ConnectionError):
                async with asyncio.timeout(20):
                    while chunk := await loop.sock_recv(sock, 1024):
                        taken += len(chunk)
                        await asyncio.sleep(0.05)  # about 20 KB/s
        await eventually(lambda: counters.connections_open == 0, "the client is dropped")
    assert 0 < taken < BIG


async def test_one_address_cannot_take_every_slot_from_another(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # 250 never-reading clients from 127.0.0.1 against max_connections = 200: one address
    # gets at most half of the slots (the default per-source limit), so a client from
    # 127.0.0.2 is served at once, long before any send timeout.
    site(tmp_path)
    async with running_host(web(max_connections=200, send_timeout=600), tmp_path) as host:
        address = host.bound("site")[0]
        counters = host.apps["site"].counters
        with never_reading(address, 250):
            await eventually(lambda: counters.rejected == 150, "150 refused")
            assert counters.connections_open == 100
            response = await fetch_from(address, "127.0.0.2", "/small.txt")
            assert response.startswith(b"HTTP/1.1 200 ")
            assert response.endswith(b"small and served\n")
            # The same address stays refused while it holds its half.
            assert await fetch_from(address, "127.0.0.1", "/small.txt") == b""
    gc.collect()  # a failed task is reported when it is collected
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


@pytest.mark.slow
def test_sigterm_with_clients_that_never_read(tmp_path: Path) -> None:
    # Web, video and echo each hold clients that read nothing when SIGTERM arrives: the
    # host stops within the grace period (plus the short abort wait), with nothing in its
    # log that looks like a crash.
    grace = 6.0
    site(tmp_path)
    config = tmp_path / "serve.toml"
    config.write_text(
        f"[host]\ngrace = {grace}\n"
        + web().replace("[apps.site]", "[apps.web]")
        + web("video").replace("[apps.site]", "[apps.tv]")
        + '[apps.echo]\nkind = "echo"\nlisten = "127.0.0.1:0"\n'
    )
    with ServeProcess(config, tmp_path) as serve:
        doc = serve.start()
        held: list[socket.socket] = []
        with (
            never_reading(addresses(doc, "web")[0], 5) as web_clients,
            never_reading(addresses(doc, "tv")[0], 5) as tv_clients,
        ):
            for _ in range(5):
                sock = socket.create_connection(addresses(doc, "echo")[0], timeout=10)
                sock.setblocking(False)
                with contextlib.suppress(BlockingIOError):  # echoed back, never read
                    while True:
                        sock.send(b"x" * 65536)
                held.append(sock)
            time.sleep(0.5)  # let the host fill its side too
            started = time.monotonic()
            serve.signal(signal.SIGTERM)
            assert serve.wait(timeout=60) == 0
            took = time.monotonic() - started
            assert len(web_clients) == len(tv_clients) == 5
        for sock in held:
            sock.close()
        log = serve.stderr()
    assert "Traceback" not in log, log
    assert "CancelledError" not in log, log
    # Twice the grace (aiohttp's own shutdown) would be 12 s; the stop ends the rest at 6 s.
    assert took < grace + ABORT_WAIT + 1.5, (took, log)


@pytest.mark.parametrize(
    "headers",
    [
        [f"X-Many-{n}: v" for n in range(130)],  # more than 128 fields
        ["X-Long: " + "a" * 9000],  # a field longer than 8190 bytes
    ],
    ids=["many fields", "long field"],
)
async def test_request_heads_are_bounded(tmp_path: Path, headers: list[str]) -> None:
    site(tmp_path)
    async with running_host(web(), tmp_path) as host:
        args = [arg for header in headers for arg in ("-H", header)]
        rc, out, err = await curl(
            "-o", "/dev/null", "-w", "%{http_code}", *args, url(host, "site", "/small.txt")
        )
        assert (rc, out) == (0, b"400"), err
        # The same request within the limits is served.
        rc, out, _ = await curl(
            "-o", "/dev/null", "-w", "%{http_code}", url(host, "site", "/small.txt")
        )
        assert out == b"200"


async def test_a_tls_client_that_never_says_hello_is_closed(tmp_path: Path) -> None:
    # Before its handshake a TLS connection is not HTTP yet: it gets header_timeout too,
    # not asyncio's 60 s.
    site(tmp_path)
    async with running_host(web(tls="true", header_timeout=0.5), tmp_path) as host:
        reader, writer = await asyncio.open_connection(*host.bound("site")[0])
        async with asyncio.timeout(20):
            with contextlib.suppress(ConnectionResetError):
                assert await reader.read() == b""  # closed without a ClientHello
        writer.close()
        with contextlib.suppress(ConnectionResetError):
            await writer.wait_closed()
        # A real TLS client is still served.
        rc, out, err = await curl("-k", url(host, "site", "/small.txt", scheme="https"))
        assert (rc, out) == (0, b"small and served\n"), err


@pytest.mark.parametrize("kind", ["web", "video"])
async def test_a_file_name_that_is_not_utf8_does_not_break_the_listing(
    tmp_path: Path, kind: str
) -> None:
    # Anyone who can drop a file into the root can pick its name's bytes.
    root = site(tmp_path)
    (root / "d").mkdir()
    (root / "d" / "ok.webm").write_bytes(b"ok\n")  # listed by web, played by video
    (root / "d" / os.fsdecode(b"bad\xff\x1b.webm")).write_bytes(b"odd\n")
    async with running_host(web(kind, listing="true"), tmp_path) as host:
        rc, out, err = await curl("-i", url(host, "site", "/d/"))
        assert rc == 0, err
        assert out.startswith(b"HTTP/1.1 200 "), out[:200]
        assert b"ok.webm" in out
        assert b"bad" not in out
