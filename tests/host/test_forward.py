"""The forward kind: both directions, half-close, limits, a dead backend; splice and copy."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from portkit.host._host import Host
from tests.client.helpers import reset_after_a_line
from tests.host._helpers import eventually, running_host

BIG = 8 * 1024 * 1024


async def backend_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Commands: 'upper\\n' echoes upper-cased lines; 'sink\\n' reads to EOF, then answers
    with the byte count and digest; 'blob N\\n' sends N bytes then closes."""
    command = (await reader.readline()).decode().split()
    if command[0] == "upper":
        while line := await reader.readline():
            writer.write(line.upper())
            await writer.drain()
    elif command[0] == "sink":
        digest, count = hashlib.sha256(), 0
        while chunk := await reader.read(65536):
            digest.update(chunk)
            count += len(chunk)
        writer.write(f"{count} {digest.hexdigest()}\n".encode())
        await writer.drain()
    elif command[0] == "blob":
        size = int(command[1])
        block = bytes(range(256)) * 256
        while size:
            piece = block[: min(size, len(block))]
            writer.write(piece)
            await writer.drain()
            size -= len(piece)
    writer.close()


@pytest.fixture
async def backend() -> AsyncIterator[int]:
    server = await asyncio.start_server(backend_handler, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


def config(port: int, *, logged: bool = False, **options: object) -> str:
    """A one-application configuration forwarding to ``port``; ``logged``: to ``fwd.log``."""
    extra = "".join(
        f"{k} = {str(v).lower() if isinstance(v, bool) else v}\n" for k, v in options.items()
    )
    log = 'access_log = "fwd.log"\n' if logged else ""
    return f'[apps.fwd]\nkind = "forward"\nlisten = "127.0.0.1:0"\nto = "127.0.0.1:{port}"\n{extra}{log}'


@pytest.fixture(params=[True, False], ids=["splice", "copy"])
def splice(request: pytest.FixtureRequest) -> bool:
    """Both ways of copying: zero-copy splice, and recv/sendall."""
    return bool(request.param)


@pytest.fixture
async def host(splice: bool, backend: int, tmp_path: Path) -> AsyncIterator[Host]:
    async with running_host(config(backend, splice=splice), tmp_path) as running:
        yield running


async def connect(host: Host) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(*host.bound("fwd")[0])


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    await writer.wait_closed()


async def test_both_directions(host: Host) -> None:
    reader, writer = await connect(host)
    writer.write(b"upper\n")
    for line in (b"hello\n", b"ports and applications\n"):
        writer.write(line)
        assert await reader.readline() == line.upper()
    await close(writer)


async def test_half_close_is_passed_on_and_the_other_way_stays_open(host: Host) -> None:
    reader, writer = await connect(host)
    writer.write(b"sink\n")
    payload = bytes(range(256)) * 4096  # 1 MiB
    writer.write(payload)
    writer.write_eof()  # our direction ends; the backend sees EOF only if we pass it on
    answer = await reader.readline()
    assert answer.decode().split() == [str(len(payload)), hashlib.sha256(payload).hexdigest()]
    assert await reader.read() == b""
    await close(writer)
    counters = host.apps["fwd"].counters.snapshot()
    assert counters.bytes_in == len(payload) + len(b"sink\n")


async def test_large_transfer_toward_the_client(host: Host) -> None:
    reader, writer = await connect(host)
    writer.write(f"blob {BIG}\n".encode())
    digest, count = hashlib.sha256(), 0
    while chunk := await reader.read(1 << 20):
        digest.update(chunk)
        count += len(chunk)
    expected = hashlib.sha256((bytes(range(256)) * 256) * (BIG // 65536)).hexdigest()
    assert (count, digest.hexdigest()) == (BIG, expected)
    await close(writer)


async def test_dead_backend_gives_a_clean_close(tmp_path: Path) -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    dead_port = probe.getsockname()[1]  # bound, never listening: connections are refused
    try:
        async with running_host(config(dead_port), tmp_path) as host:
            reader, writer = await connect(host)
            assert await reader.read() == b""  # EOF, not a reset
            await close(writer)
            counters = host.apps["fwd"].counters
            await eventually(lambda: counters.connections_open == 0, "connection closed")
            assert counters.errors == 1
    finally:
        probe.close()


async def test_connection_limit(backend: int, tmp_path: Path) -> None:
    async with running_host(config(backend, max_connections=2, per_source=2), tmp_path) as host:
        held = []
        for _ in range(2):
            reader, writer = await connect(host)
            writer.write(b"upper\nx\n")
            assert await reader.readline() == b"X\n"  # admitted and forwarding
            held.append(writer)
        reader, writer = await connect(host)
        # Closed at once (EOF), or reset if it closed before our handshake settled.
        with contextlib.suppress(ConnectionResetError):
            assert await reader.read() == b""
        await close(writer)
        assert host.apps["fwd"].counters.snapshot().rejected == 1
        for w in held:
            await close(w)


def burst(address: tuple[str, int], count: int) -> list[socket.socket]:
    """``count`` connections made back to back before the event loop runs again: the
    host's accept loop then finds them all queued at once (a burst)."""
    return [socket.create_connection(address, timeout=10) for _ in range(count)]


async def test_a_burst_opens_no_more_backend_connections_than_the_limit(tmp_path: Path) -> None:
    backend_open, backend_peak = 0, 0

    async def count(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal backend_open, backend_peak
        backend_open += 1
        backend_peak = max(backend_peak, backend_open)
        await reader.read()  # held until the forwarder closes its side
        backend_open -= 1
        writer.close()

    server = await asyncio.start_server(count, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    text = config(port, max_connections=5, per_source=5)
    async with server, running_host(text, tmp_path) as host:
        clients = burst(host.bound("fwd")[0], 50)
        counters = host.apps["fwd"].counters
        await eventually(lambda: counters.rejected == 45, "45 of the burst refused")
        await eventually(lambda: backend_open == 5, "5 forwarded")
        await asyncio.sleep(0.2)  # give any overshooting connection time to reach the backend
        assert counters.connections_open == 5
        for client in clients:
            client.close()
        await eventually(lambda: backend_open == 0, "backend connections closed")
    assert backend_peak == 5


async def test_one_address_cannot_take_every_slot(backend: int, tmp_path: Path) -> None:
    # max_connections = 4: one address gets half by default; another is still served.
    async with running_host(config(backend, max_connections=4), tmp_path) as host:
        address = host.bound("fwd")[0]
        hogs = burst(address, 4)
        counters = host.apps["fwd"].counters
        await eventually(lambda: counters.rejected == 2, "two from 127.0.0.1 refused")
        reader, writer = await asyncio.open_connection(*address, local_addr=("127.0.0.2", 0))
        writer.write(b"upper\nanother address\n")
        assert await reader.readline() == b"ANOTHER ADDRESS\n"
        await close(writer)
        for hog in hogs:
            hog.close()


async def test_a_client_that_never_reads_is_dropped(
    backend: int, tmp_path: Path, splice: bool
) -> None:
    text = config(backend, logged=True, send_timeout=0.5, splice=splice)
    async with running_host(text, tmp_path) as host:
        with socket.socket() as client:
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            client.connect(host.bound("fwd")[0])
            client.sendall(b"blob 268435456\n")  # 256 MiB it never reads
            counters = host.apps["fwd"].counters
            await eventually(lambda: counters.connections_open == 1, "forwarding")
            await eventually(lambda: counters.connections_open == 0, "dropped")
    assert "ended: send timeout: nothing taken for 0.5s" in (tmp_path / "fwd.log").read_text()


async def test_idle_connection_is_closed_both_ways(
    backend: int, tmp_path: Path, splice: bool
) -> None:
    text = config(backend, logged=True, idle_timeout=0.5, splice=splice)
    async with running_host(text, tmp_path) as host:
        reader, writer = await connect(host)
        writer.write(b"upper\nab\n")
        assert await reader.readline() == b"AB\n"
        async with asyncio.timeout(10):  # then nothing moves: the forwarder closes
            assert await reader.read() == b""
        await close(writer)
        counters = host.apps["fwd"].counters
        await eventually(lambda: counters.connections_open == 0, "connection closed")
    log = (tmp_path / "fwd.log").read_text()
    # What moved before the timeout is counted: 9 bytes up, 3 down.
    assert "ended: idle timeout: nothing moved for 0.5s" in log
    assert log.rstrip().endswith("up=9 3")


async def test_a_reset_from_the_backend_closes_the_client(tmp_path: Path, splice: bool) -> None:
    server = await asyncio.start_server(reset_after_a_line, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    text = config(port, logged=True, splice=splice)
    async with server, running_host(text, tmp_path) as host:
        reader, writer = await connect(host)
        writer.write(b"reset me\n")  # the client's own direction stays open
        async with asyncio.timeout(10):
            with contextlib.suppress(ConnectionResetError):
                assert await reader.read() == b""
        await close(writer)
        counters = host.apps["fwd"].counters
        await eventually(lambda: counters.connections_open == 0, "connection closed")
    assert "ended: Connection reset by peer" in (tmp_path / "fwd.log").read_text()


@pytest.mark.parametrize(
    ("to", "said"),
    [
        ("127.0.0.1", "no port in '127.0.0.1'"),
        ("127.0.0.1:0", "cannot forward to port 0 in '127.0.0.1:0'"),
        ("127.0.0.1:70000", "port must be 0-65535, not 70000"),
        ("127.0.0.1:nosuchservice", "nosuchservice"),
        ("127.0.0.1:53/udp", "forward is TCP, not udp: '127.0.0.1:53/udp'"),
    ],
)
def test_a_bad_to_is_one_line_naming_the_key(tmp_path: Path, to: str, said: str) -> None:
    from portkit import ConfigError
    from portkit.host._config import load_config

    path = tmp_path / "serve.toml"
    path.write_text(f'[apps.fwd]\nkind = "forward"\nlisten = "127.0.0.1:0"\nto = "{to}"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "[apps.fwd] to:" in message
    assert said in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("to", "target"),
    [
        ("127.0.0.1:8080", ("127.0.0.1", 8080)),
        ("[::1]:8080", ("::1", 8080)),
        ("localhost:http", ("localhost", 80)),  # a service name, as portkit connect reads it
        ("https://backend.example", ("backend.example", 443)),
    ],
)
def test_to_is_read_as_every_endpoint_is(to: str, target: tuple[str, int]) -> None:
    from portkit.host.apps.forward import parse_target

    assert parse_target(to) == target
