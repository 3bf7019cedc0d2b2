"""Servers the identification tests run on loopback: well-behaved and hostile ones.

Each binds 127.0.0.1 port 0; the port is known (and the server accepting) when the
context manager yields, so no test sleeps and hopes. Every connection task is cancelled
and every transport closed on exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from tests import _tls

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
HOST = "127.0.0.1"
FIXTURES = Path(__file__).resolve().parent.parent / "proto" / "fixtures"


@contextlib.asynccontextmanager
async def serve(handler: Handler, *, tls: ssl.SSLContext | None = None) -> AsyncIterator[int]:
    """Run ``handler`` for each connection; yield the listening port."""
    tasks: set[asyncio.Task[None]] = set()
    writers: set[asyncio.StreamWriter] = set()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        writers.add(writer)
        try:
            await handler(reader, writer)
        except (ConnectionError, ssl.SSLError):
            pass  # the identifier hung up on a hostile server: that is the point
        finally:
            writer.close()

    server = await asyncio.start_server(on_connect, HOST, 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    try:
        yield port
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        for writer in list(writers):
            writer.close()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


async def drain_until_eof(reader: asyncio.StreamReader) -> None:
    """Read and discard (bounded chunks) until the client leaves."""
    while await reader.read(4096):
        pass


async def tarpit(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accept and never say anything."""
    await drain_until_eof(reader)


async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Send endless bytes until the client goes away."""
    chunk = b"A" * 65536
    while True:
        writer.write(chunk)
        await writer.drain()


async def drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Send a real SSH banner one byte a second."""
    banner = (FIXTURES / "ssh-22-tcp.bin").read_bytes()
    for i in range(len(banner)):
        writer.write(banner[i : i + 1])
        await writer.drain()
        await asyncio.sleep(1.0)


async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Reset the connection at once (SO_LINGER 0, then close)."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(__import__("socket").SOL_SOCKET, __import__("socket").SO_LINGER,
                    struct.pack("ii", 1, 0))  # fmt: skip
    writer.transport.abort()


async def tls_garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer a TLS ClientHello with garbage; be silent to anything else."""
    first = await reader.read(1)
    if first == b"\x16":
        writer.write(b"\x17\x99\x00garbage that is not a TLS record\r\n")
        await writer.drain()
        return
    await drain_until_eof(reader)


def greeter(banner: bytes) -> Handler:
    """A server that greets with ``banner`` (a real capture) and then only reads."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(banner)
        await writer.drain()
        await drain_until_eof(reader)

    return handler


def self_signed_context(tmp: Path, name: str = "identify.portkit.test") -> ssl.SSLContext:
    """A server TLS context with a fresh self-signed certificate for ``name``."""
    return _tls.self_signed_context(tmp, name)
