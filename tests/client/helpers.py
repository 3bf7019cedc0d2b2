"""Real peers for the client tests: listeners in child processes, echo and TLS servers."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field

from tests._tls import self_signed_cert, server_tls_context

__all__ = [
    "EchoServer",
    "echo_server",
    "held_port",
    "refused_port",
    "reset_after_a_line",
    "self_signed_cert",
    "server_tls_context",
    "unanswered_port",
]

# A child process that binds the sockets it is told to, prints the port, and holds them
# until its stdin closes: a listener owned by a pid other than the test's.
_HOLDER = """
import socket, sys
kinds = sys.argv[1].split(",")
port = int(sys.argv[2])
held = []
for kind in kinds:
    family = socket.AF_INET6 if kind.endswith("6") else socket.AF_INET
    stype = socket.SOCK_STREAM if kind.startswith("tcp") else socket.SOCK_DGRAM
    s = socket.socket(family, stype)
    s.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", port))
    if stype == socket.SOCK_STREAM:
        s.listen()
    port = s.getsockname()[1]
    held.append(s)
print(port, flush=True)
sys.stdin.read()
for s in held:
    s.close()
"""


@contextmanager
def held_port(kinds: str = "tcp", port: int = 0) -> Iterator[tuple[int, int]]:
    """Hold a port in a child process; yield (port, pid) once it is bound.

    ``kinds`` is a comma list of ``tcp``, ``tcp6``, ``udp``, ``udp6``; the first binds
    ``port`` (0: any) and the others bind the same number.
    """
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, kinds, str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    try:
        line = proc.stdout.readline()  # the ready signal: printed after every bind
        assert line.strip().isdigit(), f"holder did not start: {line!r}"
        yield int(line), proc.pid
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
        proc.stdout.close()


@dataclass
class EchoServer:
    """A loopback server that echoes each line upper-cased after a greeting.

    At end of file from the client, or a ``QUIT`` line, it writes ``BYE <bytes seen>``
    and closes, so a test can see that a half-close reached it and that replies still
    flowed after it.
    """

    server: asyncio.Server
    port: int
    seen: list[bytes] = field(default_factory=list)


@asynccontextmanager
async def echo_server(tls: ssl.SSLContext | None = None) -> AsyncIterator[EchoServer]:
    handlers: set[asyncio.Task[None]] = set()
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            writer.write(b"HELLO\n")
            total = 0
            while line := await reader.readline():
                total += len(line)
                seen.append(line)
                if line.strip() == b"QUIT":
                    break  # the server ends the conversation, the client's input still open
                writer.write(line.upper())
                await writer.drain()
            writer.write(b"BYE %d\n" % total)
            await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()
            handlers.discard(task)

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    try:
        yield EchoServer(server=server, port=port, seen=seen)
    finally:
        server.close()
        for task in list(handlers):
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()


@contextmanager
def unanswered_port() -> Iterator[int]:
    """Yield a loopback port whose SYNs go unanswered: a listener with a full backlog.

    A listener that never accepts, with a backlog of 0, queues one connection; further
    SYNs are dropped, so a connect there times out instead of being refused.
    """
    listener = socket.socket()
    fillers: list[socket.socket] = []
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        for _ in range(16):  # bounded: the kernel queues one or two
            filler = socket.socket()
            fillers.append(filler)
            filler.settimeout(0.5)
            try:
                filler.connect(("127.0.0.1", port))
            except TimeoutError:
                break  # the ready signal: this SYN went unanswered
        else:
            raise AssertionError("the backlog never filled")
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def refused_port() -> int:
    """Return a loopback port where nothing listens (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def reset_after_a_line(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A server handler that reads one line, then resets the connection (RST, not FIN)."""
    await reader.readline()
    sock = writer.get_extra_info("socket")
    # SO_LINGER with a zero timeout turns close() into a RST.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    writer.transport.abort()
