"""converse(): a real conversation with loopback servers, plain and TLS, and its failures."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portkit import ConnectionRefused, ConnectTimeout, EndpointError, NetworkError
from portkit.client import Timeouts, TlsError, converse, read_fd, tls_context
from tests.client.helpers import (
    echo_server,
    refused_port,
    reset_after_a_line,
    self_signed_cert,
    server_tls_context,
    unanswered_port,
)


async def _chunks(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def _chunks_then_wait(*chunks: bytes) -> AsyncIterator[bytes]:
    """Send ``chunks`` and then never end: the input stays open."""
    for chunk in chunks:
        yield chunk
    await asyncio.Event().wait()
    yield b""  # pragma: no cover  (unreachable: makes this an async generator)


async def test_half_close_reaches_the_server_and_replies_still_flow() -> None:
    out = bytearray()
    async with echo_server() as server:
        result = await converse(
            "127.0.0.1", server.port, _chunks(b"one\n", b"tw", b"o\n"), out.extend
        )
    # BYE comes after the server read end of file: the half-close reached it, and the
    # reply written after it still came back.
    assert bytes(out) == b"HELLO\nONE\nTWO\nBYE 8\n"
    assert result.sent == 8
    assert result.received == len(out)
    assert not result.closed_by_peer
    assert result.peer == ("127.0.0.1", server.port)
    assert result.tls is None


async def test_empty_input_still_reads_the_greeting() -> None:
    out = bytearray()
    async with echo_server() as server:
        result = await converse("127.0.0.1", server.port, _chunks(), out.extend)
    assert bytes(out) == b"HELLO\nBYE 0\n"
    assert result.sent == 0


async def test_peer_closing_ends_the_conversation_while_input_is_open() -> None:
    out = bytearray()
    async with echo_server() as server:
        result = await converse(
            "127.0.0.1", server.port, _chunks_then_wait(b"hi\n", b"QUIT\n"), out.extend
        )
    assert bytes(out) == b"HELLO\nHI\nBYE 8\n"
    assert result.closed_by_peer


async def test_large_transfer_both_ways() -> None:
    line = b"x" * 1000 + b"\n"
    out = bytearray()
    async with echo_server() as server:
        result = await converse("127.0.0.1", server.port, _chunks(*[line] * 2000), out.extend)
    assert result.sent == len(line) * 2000
    assert bytes(out).count(line.upper()) == 2000
    assert bytes(out).endswith(b"BYE %d\n" % (len(line) * 2000))


async def test_ipv6_loopback() -> None:
    with socket.socket(socket.AF_INET6) as listener:
        listener.bind(("::1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        loop = asyncio.get_running_loop()

        async def serve_once() -> None:
            conn, _ = await loop.sock_accept(listener)
            with conn:
                await loop.sock_sendall(conn, b"v6\n")

        server = asyncio.ensure_future(serve_once())
        out = bytearray()
        result = await converse("::1", port, _chunks_then_wait(), out.extend)
        await server
    assert bytes(out) == b"v6\n"
    assert result.peer == ("::1", port)


async def test_tls_with_a_trusted_self_signed_certificate(tmp_path: Path) -> None:
    cert, key = self_signed_cert(tmp_path)
    out = bytearray()
    async with echo_server(tls=server_tls_context(cert, key)) as server:
        result = await converse(
            "127.0.0.1",
            server.port,
            _chunks_then_wait(b"secret\n", b"QUIT\n"),
            out.extend,
            tls=tls_context(cafile=str(cert)),
            server_hostname="localhost",
        )
    assert bytes(out) == b"HELLO\nSECRET\nBYE 12\n"
    assert server.seen == [b"secret\n", b"QUIT\n"]
    assert result.tls is not None
    assert result.tls.version is not None
    assert result.tls.version.startswith("TLS")
    assert result.tls.subject == "CN=localhost"
    assert result.tls.self_signed is True


async def test_tls_untrusted_certificate_is_a_tls_error(tmp_path: Path) -> None:
    cert, key = self_signed_cert(tmp_path)
    async with echo_server(tls=server_tls_context(cert, key)) as server:
        with pytest.raises(TlsError, match=r"self.signed certificate.*--insecure"):
            await converse(
                "127.0.0.1", server.port, _chunks(), bytearray().extend, tls=tls_context()
            )


async def test_tls_wrong_name_is_a_tls_error(tmp_path: Path) -> None:
    cert, key = self_signed_cert(tmp_path, name="mail.example")
    async with echo_server(tls=server_tls_context(cert, key)) as server:
        with pytest.raises(TlsError, match="localhost"):
            await converse(
                "127.0.0.1",
                server.port,
                _chunks(),
                bytearray().extend,
                tls=tls_context(cafile=str(cert)),
                server_hostname="localhost",
            )


async def test_tls_insecure_skips_verification(tmp_path: Path) -> None:
    cert, key = self_signed_cert(tmp_path)
    out = bytearray()
    async with echo_server(tls=server_tls_context(cert, key)) as server:
        await converse(
            "127.0.0.1",
            server.port,
            _chunks_then_wait(b"QUIT\n"),
            out.extend,
            tls=tls_context(verify=False),
        )
    assert out.startswith(b"HELLO\n")


async def test_tls_to_a_plain_server_is_a_tls_error() -> None:
    async with echo_server() as server:
        with pytest.raises(TlsError, match=f"127.0.0.1:{server.port}"):
            await converse(
                "127.0.0.1", server.port, _chunks(), bytearray().extend, tls=tls_context()
            )


async def test_refused() -> None:
    port = refused_port()
    with pytest.raises(ConnectionRefused, match=f"127.0.0.1:{port} refused"):
        await converse("127.0.0.1", port, _chunks(), bytearray().extend)


async def test_connect_timeout() -> None:
    with (
        unanswered_port() as port,
        pytest.raises(ConnectTimeout, match=rf"127\.0\.0\.1:{port} within 0\.5 s"),
    ):
        await converse(
            "127.0.0.1", port, _chunks(), bytearray().extend, timeouts=Timeouts(connect=0.5)
        )


async def test_idle_timeout() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    # Accepted by the kernel, never answered: the conversation idles.
    with listener, pytest.raises(ConnectTimeout, match=r"no data .* for 0\.3 s"):
        await converse(
            "127.0.0.1",
            listener.getsockname()[1],
            _chunks_then_wait(),
            bytearray().extend,
            timeouts=Timeouts(idle=0.3),
        )


async def test_reset_by_peer_is_a_network_error() -> None:
    server = await asyncio.start_server(reset_after_a_line, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(NetworkError, match="reset by peer"):
            await converse("127.0.0.1", port, _chunks_then_wait(b"go\n"), bytearray().extend)


@pytest.mark.parametrize("port", [0, 65536, -1])
async def test_bad_port(port: int) -> None:
    with pytest.raises(EndpointError, match=str(port)):
        await converse("127.0.0.1", port, _chunks(), bytearray().extend)


def test_tls_context_defaults_verify() -> None:
    context = tls_context()
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname


async def test_read_fd_regular_file_dev_null_and_pipe(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.write_bytes(b"z" * 200_000)
    with data.open("rb") as f:
        assert b"".join([c async for c in read_fd(f.fileno())]) == b"z" * 200_000
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        assert [c async for c in read_fd(null)] == []
    finally:
        os.close(null)
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, b"piped")
        os.close(write_end)
        write_end = -1
        assert b"".join([c async for c in read_fd(read_end)]) == b"piped"
        assert os.get_blocking(read_end)  # restored for whoever shares it next
    finally:
        os.close(read_end)
        if write_end != -1:
            os.close(write_end)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chunks=st.lists(st.binary(min_size=1, max_size=3000), max_size=20))
def test_any_chunking_arrives_intact_and_in_order(chunks: list[bytes]) -> None:
    async def main() -> tuple[bytes, bytes]:
        received = bytearray()

        async def collect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            received.extend(await reader.read())  # until the client's half-close
            writer.write(bytes(received[::-1]))  # a reply only possible after all arrived
            await writer.drain()
            writer.close()
            await writer.wait_closed()

        server = await asyncio.start_server(collect, "127.0.0.1", 0)
        async with server:
            out = bytearray()
            port = server.sockets[0].getsockname()[1]
            await converse("127.0.0.1", port, _chunks(*chunks), out.extend)
        return bytes(received), bytes(out)

    received, out = asyncio.run(main())
    assert received == b"".join(chunks)
    assert out == received[::-1]


async def test_cancelling_closes_the_connection_and_the_input() -> None:
    # Ctrl-C cancels the conversation: both directions stop, the input is let go of,
    # and the server sees the connection close; the cancellation itself propagates.
    connected = asyncio.Event()
    closed = asyncio.Event()
    input_closed = False

    async def held(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connected.set()
        assert await reader.read() == b"go\n"  # then end of file: the client closed
        closed.set()
        writer.close()

    async def source() -> AsyncIterator[bytes]:
        nonlocal input_closed
        try:
            yield b"go\n"
            await asyncio.Event().wait()
        finally:
            input_closed = True

    server = await asyncio.start_server(held, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        task = asyncio.create_task(converse("127.0.0.1", port, source(), bytearray().extend))
        async with asyncio.timeout(10):
            await connected.wait()
        await asyncio.sleep(0.1)  # let "go" be sent: the source now waits for more input
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        async with asyncio.timeout(10):
            await closed.wait()
    assert input_closed
