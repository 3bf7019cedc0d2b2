"""A port-aware netcat: move bytes between a local source and sink and an application.

:func:`converse` connects to (host, port), optionally with implicit TLS, then copies
bytes both ways until the conversation ends:

- when the local source ends (stdin's end of file), a plain TCP connection is
  half-closed (``shutdown(SHUT_WR)``, the peer reads end of file) and the replies are
  still read until the peer closes; TLS has no half-close here, so after the source
  ends the replies are read until the peer closes or the idle timeout expires;
- when the peer closes, the conversation is over, whatever the source still holds.

On plain TCP with a :func:`read_fd` source or a :func:`write_fd` sink, the bytes skip
asyncio's streams (:mod:`portkit._splice`): ``splice(2)`` from the socket to a pipe, a
file or /dev/null, and from a pipe to the socket; anything that cannot (a terminal, a
file opened for appending) is copied chunk by chunk on the same socket.

Errors are portkit's: :class:`~portkit.ConnectionRefused` (nothing listens),
:class:`~portkit.ConnectTimeout` (no answer in time, or idle too long),
:class:`TlsError` (the handshake failed), :class:`~portkit.ResolveError`, and
:class:`~portkit.NetworkError` for the rest (unreachable, reset by peer).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import socket
import ssl
import stat
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

from portkit._errors import (
    ConnectTimeout,
    EndpointError,
    NetworkError,
    UsageError,
)
from portkit._splice import HAVE_SPLICE, SpliceUnsupported, file_copy, splice_copy
from portkit.endpoint._authority import host_port
from portkit.endpoint._oserror import network_error

if TYPE_CHECKING:
    from portkit.results import TlsInfo

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "READ_SIZE",
    "Conversation",
    "FdSink",
    "FdSource",
    "Timeouts",
    "TlsError",
    "converse",
    "crlf",
    "read_fd",
    "tls_context",
    "write_fd",
]

DEFAULT_CONNECT_TIMEOUT = 10.0  # seconds for TCP connect plus the TLS handshake
READ_SIZE = 256 * 1024  # bytes read at a time from either side; the sink gets at most this
# The peer's bytes buffered before reading from the socket pauses: room for a few reads,
# so a fast sender is not stopped and restarted for every chunk (bounded memory still).
BUFFER_LIMIT = 4 * READ_SIZE
CLOSE_TIMEOUT = 5.0  # seconds to wait for the peer's side of a TLS shutdown

logger = logging.getLogger(__name__)


class TlsError(NetworkError):
    """The TLS handshake failed (certificate not trusted, wrong name, not TLS at all)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeouts:
    """Time limits per phase, in seconds."""

    connect: float = DEFAULT_CONNECT_TIMEOUT  # TCP connect plus TLS handshake
    idle: float | None = None  # no byte either way for this long ends it; None: never


@dataclass(frozen=True, slots=True, kw_only=True)
class Conversation:
    """How a conversation went."""

    peer: tuple[str, int]  # the address and port actually connected to
    sent: int  # bytes sent to the peer
    received: int  # bytes received from the peer
    closed_by_peer: bool  # the peer closed while our source was still open
    tls: TlsInfo | None = None  # what the handshake showed, when TLS was used


def tls_context(*, verify: bool = True, cafile: str | None = None) -> ssl.SSLContext:
    """Return a client TLS context: the system's trust store, or ``cafile``'s, or none."""
    context = ssl.create_default_context(cafile=cafile)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _tls_info(writer: asyncio.StreamWriter) -> TlsInfo | None:
    ssl_object = writer.get_extra_info("ssl_object")
    if not isinstance(ssl_object, ssl.SSLObject):
        return None
    # Imported here: the certificate parser (cryptography) is for TLS connections only.
    from portkit._tls_summary import tls_summary

    return tls_summary(ssl_object)


def _ssl_reason(exc: ssl.SSLError) -> str:
    """OpenSSL's reason in words, with a hint where the usual cause is known."""
    reason = (exc.reason or str(exc)).lower().replace("_", " ")
    if exc.reason in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG"):
        reason += " (the server does not speak TLS on this port; try --no-tls)"
    return reason


def _handshake_error(exc: ssl.SSLError, where: str) -> TlsError:
    """The one-line error for a failed TLS handshake with ``where``."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return TlsError(
            f"tls handshake with {where} failed: {exc.verify_message} "
            "(--insecure skips verification, --cafile names a trusted certificate)"
        )
    return TlsError(f"tls handshake with {where} failed: {_ssl_reason(exc)}")


async def _open(
    host: str,
    port: int,
    *,
    tls: ssl.SSLContext | None,
    server_hostname: str | None,
    connect_timeout: float,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    where = host_port(host, port)
    try:
        async with asyncio.timeout(connect_timeout):
            return await asyncio.open_connection(
                host,
                port,
                ssl=tls,
                server_hostname=(server_hostname or host) if tls else None,
                limit=BUFFER_LIMIT,
            )
    except ssl.SSLError as exc:
        raise _handshake_error(exc, where) from exc
    except OSError as exc:  # after the TLS errors, which are OSErrors too
        raise network_error(exc, host, port, timeout=connect_timeout) from exc


class _Held(asyncio.Protocol):
    """Holds a fresh connection still, so that its socket can be taken over whole."""

    def __init__(self) -> None:
        self.early = bytearray()  # what arrived before reading paused (normally nothing)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.pause_reading()  # before the transport's first read: no byte is taken

    def data_received(self, data: bytes) -> None:
        self.early += data


async def _open_socket(
    host: str, port: int, *, connect_timeout: float
) -> tuple[socket.socket, bytes]:
    """Connect as :func:`_open` does (same addresses, same errors), but return the socket
    itself, non-blocking, and whatever came before it was taken over."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(connect_timeout):
            transport, held = await loop.create_connection(_Held, host, port)
    except OSError as exc:
        raise network_error(exc, host, port, timeout=connect_timeout) from exc
    # A duplicate of the descriptor outlives the transport, which is closed at once.
    sock = socket.socket(fileno=os.dup(transport.get_extra_info("socket").fileno()))
    transport.close()
    sock.setblocking(False)
    return sock, bytes(held.early)


def _unowned_file(fd: int) -> BinaryIO:
    """Wrap ``fd`` in a file object that does not close it (the caller owns stdin)."""
    return open(fd, "rb", buffering=0, closefd=False)


class FdSource:
    """The bytes of a file descriptor (stdin: ``0``) as a source for :func:`converse`.

    Iterated, it yields what ``fd`` holds until its end; given to :func:`converse` for a
    plain TCP connection untouched, a pipe's bytes are moved to the socket by the kernel
    (``splice``) and a regular file is sent from large blocks, not chunk by chunk.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._chunks: AsyncIterator[bytes] | None = None

    @property
    def started(self) -> bool:
        """Whether iterating has begun (then only iterating may go on)."""
        return self._chunks is not None

    def __aiter__(self) -> FdSource:
        return self

    async def __anext__(self) -> bytes:
        if self._chunks is None:
            self._chunks = _read_chunks(self.fd)
        return await anext(self._chunks)


class FdSink:
    """A sink for :func:`converse` that writes each chunk to file descriptor ``fd`` whole
    (stdout: ``1``); on a plain TCP connection the kernel may move the bytes to it instead
    (``splice``) when ``fd`` is a pipe, a regular file or a device such as /dev/null."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __call__(self, chunk: bytes) -> None:
        view = memoryview(chunk)
        while view:
            view = view[os.write(self.fd, view) :]


def read_fd(fd: int) -> FdSource:
    """The bytes file descriptor ``fd`` holds until its end, as a source (stdin: ``0``).

    Pipes, sockets and terminals are read without blocking the event loop; a regular
    file (``< message.txt``) or ``/dev/null`` never blocks, so it is read directly.
    """
    return FdSource(fd)


def write_fd(fd: int) -> FdSink:
    """A sink writing to file descriptor ``fd`` (stdout: ``1``)."""
    return FdSink(fd)


async def _read_chunks(fd: int) -> AsyncIterator[bytes]:
    mode = os.fstat(fd).st_mode
    # Regular files and devices such as /dev/null never block, and epoll refuses them.
    if stat.S_ISREG(mode) or (stat.S_ISCHR(mode) and not os.isatty(fd)):
        while chunk := os.read(fd, READ_SIZE):
            yield chunk
            await asyncio.sleep(0)  # let the replies flow while a large file is sent
        return
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=BUFFER_LIMIT, loop=loop)
    was_blocking = os.get_blocking(fd)
    pipe = _unowned_file(fd)
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader, loop=loop), pipe
    )
    try:
        while chunk := await reader.read(READ_SIZE):
            yield chunk
    finally:
        transport.close()
        # connect_read_pipe made the descriptor non-blocking; a shell sharing the
        # terminal after we exit expects it blocking again.
        os.set_blocking(fd, was_blocking)


async def crlf(source: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Yield ``source`` with each bare LF made CRLF (``--crlf``: text protocols such as
    SMTP, RFC 5321 section 2.3.8, want CRLF line ends); existing CRLFs stay as they are."""
    after_cr = False
    async for chunk in source:
        if not chunk:
            continue
        out = re.sub(rb"(?<!\r)\n", b"\r\n", chunk)
        if after_cr and chunk[:1] == b"\n":
            out = out[1:]  # a CRLF split across two reads: its LF was made CRLF above
        after_cr = chunk[-1:] == b"\r"
        yield out


async def _close(writer: asyncio.StreamWriter) -> None:
    """Close the connection; a TLS close_notify gets a bounded wait for the peer's."""
    peer = writer.get_extra_info("peername")  # a closed TLS transport cannot tell any more
    writer.close()
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await writer.wait_closed()
    except TimeoutError:
        writer.transport.abort()
    except (ConnectionError, ssl.SSLError) as exc:
        # The peer went first (reset, or no close_notify): the socket is closed either way.
        logger.debug("closing %s: %s", peer, exc)


async def converse(
    host: str,
    port: int,
    source: AsyncIterator[bytes],
    sink: Callable[[bytes], None],
    *,
    tls: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    starttls: str | None = None,
    timeouts: Timeouts = Timeouts(),  # frozen, so one shared default is safe
    on_connect: Callable[[tuple[str, int], TlsInfo | None], None] | None = None,
    on_status: Callable[[str], None] | None = None,
) -> Conversation:
    """Connect to (``host``, ``port``) over TCP and copy ``source`` to it and its replies
    to ``sink``.

    Args:
        host: a name or address; every address it resolves to is tried in turn.
        port: 1-65535 (nothing listens on port 0).
        source: the bytes to send; its end half-closes the connection (plain TCP).
        sink: called with each chunk the peer sends, in order.
        tls: a client context: implicit TLS from the first byte, or after ``starttls``.
        server_hostname: the name to verify the certificate against (default ``host``).
        starttls: upgrade in-band first (``smtp``, ``imap``, ``pop3``, ``ftp``); needs
            ``tls``.
        timeouts: connect and idle limits; the STARTTLS dialogue counts as connecting.
        on_connect: called once connected (and upgraded) with the peer address and the
            TLS summary.
        on_status: called with a line saying what the STARTTLS dialogue did.

    Returns:
        What happened: bytes each way, who closed, the TLS summary.

    Raises:
        EndpointError: ``port`` is 0 or above 65535.
        UsageError: ``starttls`` without ``tls``, or an unknown ``starttls`` protocol.
        ConnectionRefused, ConnectTimeout, ResolveError, TlsError, NetworkError.
        RemoteProtocolError: the server refused the STARTTLS dialogue.
    """
    _check_port(port)
    if starttls is not None and tls is None:
        raise UsageError("starttls needs a TLS context to upgrade with")
    if tls is None and _kernel_copies(source, sink):
        sock, early = await _open_socket(host, port, connect_timeout=timeouts.connect)
        return await _pump_socket(
            sock, early, source, sink, timeouts=timeouts, on_connect=on_connect
        )
    implicit = tls if starttls is None else None
    reader, writer = await _open(
        host,
        port,
        tls=implicit,
        server_hostname=server_hostname,
        connect_timeout=timeouts.connect,
    )
    try:
        if starttls is not None and tls is not None:
            where = host_port(host, port)
            try:
                async with asyncio.timeout(timeouts.connect):
                    said = await _starttls(
                        reader, writer, starttls, tls, server_hostname or host, where
                    )
            except TimeoutError as exc:
                raise ConnectTimeout(
                    f"{starttls} starttls with {where} did not finish within {timeouts.connect:g} s"
                ) from exc
            if on_status is not None:
                on_status(f"{starttls} starttls: the server said {said!r}; TLS started")
    except BaseException:
        writer.transport.abort()
        raise
    return await _pump(reader, writer, source, sink, timeouts=timeouts, on_connect=on_connect)


async def _starttls(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    protocol: str,
    tls: ssl.SSLContext,
    server_hostname: str,
    where: str,
) -> str:
    """Run the STARTTLS dialogue, then the handshake; return the server's go-ahead line."""
    from portkit.proto.starttls import StartTlsClient

    dialogue = StartTlsClient(protocol)
    while True:
        try:
            chunk = await reader.read(READ_SIZE)
        except ConnectionResetError as exc:
            raise NetworkError(f"connection to {where} reset by peer during starttls") from exc
        if dialogue.receive(chunk):
            break
        writer.write(dialogue.data_to_send())
        await writer.drain()
    try:
        await writer.start_tls(tls, server_hostname=server_hostname)
    except ssl.SSLError as exc:
        raise _handshake_error(exc, where) from exc
    return dialogue.transcript[-1]


def _check_port(port: int) -> None:
    if not 0 <= port <= 65535:
        raise EndpointError(f"port must be 0-65535, not {port}")
    if port == 0:
        raise EndpointError("cannot connect to port 0: nothing can listen on port 0")


async def _pump(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    source: AsyncIterator[bytes],
    sink: Callable[[bytes], None],
    *,
    timeouts: Timeouts,
    on_connect: Callable[[tuple[str, int], TlsInfo | None], None] | None,
) -> Conversation:
    """Copy bytes both ways on an open stream until the peer closes; then close it."""
    peername = writer.get_extra_info("peername")
    peer = (str(peername[0]), int(peername[1]))
    tls_info = _tls_info(writer)
    if on_connect is not None:
        on_connect(peer, tls_info)
    sent = received = 0
    source_done = False
    last_activity = time.monotonic()
    where = host_port(*peer)

    async def upstream() -> None:
        nonlocal sent, source_done, last_activity
        async for chunk in source:
            try:
                writer.write(chunk)
                await writer.drain()
            except ConnectionError as exc:  # reset, or the peer closed its reading side
                raise NetworkError(f"{where} closed the connection while we were sending") from exc
            sent += len(chunk)
            last_activity = time.monotonic()
        source_done = True
        if writer.can_write_eof():
            writer.write_eof()  # half-close: the peer reads end of file, replies still flow

    async def downstream() -> None:
        nonlocal received, last_activity
        while True:
            try:
                chunk = await reader.read(READ_SIZE)
            except ConnectionResetError as exc:
                raise NetworkError(f"connection to {where} reset by peer") from exc
            except ssl.SSLError as exc:
                raise TlsError(f"tls error talking to {where}: {_ssl_reason(exc)}") from exc
            if not chunk:
                return
            sink(chunk)  # the sink's own errors (a closed stdout) are the caller's
            received += len(chunk)
            last_activity = time.monotonic()

    def idle_since() -> float:
        return last_activity

    guards = [upstream()]
    if timeouts.idle is not None:
        guards.append(_watchdog(timeouts.idle, idle_since, where))
    try:
        # The conversation ends when the peer closes (downstream returns) or something
        # fails; the source ending alone only half-closes.
        await run_beside(downstream(), *guards)
    finally:
        await _close(writer)
    return Conversation(
        peer=peer,
        sent=sent,
        received=received,
        closed_by_peer=not source_done,
        tls=tls_info,
    )


def _kernel_copies(source: AsyncIterator[bytes], sink: Callable[[bytes], None]) -> bool:
    """Whether a plain TCP conversation can let the kernel move bytes for either side."""
    if not HAVE_SPLICE:
        return False
    return (isinstance(source, FdSource) and _send_kind(source.fd) is not None) or (
        isinstance(sink, FdSink) and _splice_target(sink.fd) is not None
    )


def _send_kind(fd: int) -> str | None:
    """How ``fd``'s bytes are sent: ``file`` (a regular file, read in large blocks and sent
    straight from them), ``splice`` (a pipe, by the kernel), or None (a terminal, a
    socket, a device: read as chunks for the event loop)."""
    mode = os.fstat(fd).st_mode
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISFIFO(mode):
        return "splice"
    return None


def _splice_target(fd: int) -> bool | None:
    """Whether ``fd`` can take splices: None if not; else whether it can say it is full
    (a pipe can, and is waited for; a regular file or /dev/null never is)."""
    mode = os.fstat(fd).st_mode
    if stat.S_ISFIFO(mode):
        return True
    if stat.S_ISREG(mode) or (stat.S_ISCHR(mode) and not os.isatty(fd)):
        # Appending (>>) writes are refused by splice; they are written as chunks.
        return None if _appends(fd) else False
    return None


def _appends(fd: int) -> bool:
    import fcntl

    return bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_APPEND)


async def _send_source(
    sock: socket.socket, source: AsyncIterator[bytes], moved: Callable[[int], None]
) -> None:
    """Send everything ``source`` holds to ``sock``: by the kernel where it can."""
    if isinstance(source, FdSource) and not source.started:
        kind = _send_kind(source.fd)
        try:
            if kind == "file":
                await file_copy(source.fd, sock.fileno(), moved)
                return
            if kind == "splice":
                await splice_copy(source.fd, sock.fileno(), moved)
                return
        except SpliceUnsupported as exc:  # nothing sent yet: send it as chunks
            logger.debug("sending %s as chunks: %s", source.fd, exc.strerror)
            if exc.pending:
                await asyncio.get_running_loop().sock_sendall(sock, exc.pending)
                moved(len(exc.pending))
    loop = asyncio.get_running_loop()
    async for chunk in source:
        await loop.sock_sendall(sock, chunk)
        moved(len(chunk))


async def _receive_sink(
    sock: socket.socket, sink: Callable[[bytes], None], moved: Callable[[int], None]
) -> None:
    """Give ``sink`` everything ``sock`` receives until the peer closes."""
    if isinstance(sink, FdSink):
        pollable = _splice_target(sink.fd)
        if pollable is not None:
            try:
                await splice_copy(sock.fileno(), sink.fd, moved, pollable_dst=pollable)
                return
            except SpliceUnsupported as exc:  # nothing written yet: write it as chunks
                logger.debug("writing to %s as chunks: %s", sink.fd, exc.strerror)
                if exc.pending:
                    sink(exc.pending)
                    moved(len(exc.pending))
    loop = asyncio.get_running_loop()
    while chunk := await loop.sock_recv(sock, READ_SIZE):
        sink(chunk)
        moved(len(chunk))


async def _pump_socket(
    sock: socket.socket,
    early: bytes,
    source: AsyncIterator[bytes],
    sink: Callable[[bytes], None],
    *,
    timeouts: Timeouts,
    on_connect: Callable[[tuple[str, int], TlsInfo | None], None] | None,
) -> Conversation:
    """:func:`_pump` on a plain TCP socket of our own, with the kernel moving the bytes
    where source and sink allow (``splice``; a file sent from large blocks): the same
    half-close, idle limit, counts and errors."""
    with sock:
        peername = sock.getpeername()
        peer = (str(peername[0]), int(peername[1]))
        if on_connect is not None:
            on_connect(peer, None)
        sent = received = 0
        source_done = False
        last_activity = time.monotonic()
        where = host_port(*peer)

        def sent_more(n: int) -> None:
            nonlocal sent, last_activity
            sent += n
            last_activity = time.monotonic()

        def received_more(n: int) -> None:
            nonlocal received, last_activity
            received += n
            last_activity = time.monotonic()

        async def upstream() -> None:
            nonlocal source_done
            try:
                await _send_source(sock, source, sent_more)
            except ConnectionError as exc:  # reset, or the peer closed its reading side
                raise NetworkError(f"{where} closed the connection while we were sending") from exc
            source_done = True
            # Half-close (RFC 9293 section 3.6): the peer reads end of file, replies still
            # flow. A peer already gone (reset) is reported by the reading side.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)

        async def downstream() -> None:
            if early:
                sink(early)
                received_more(len(early))
            try:
                await _receive_sink(sock, sink, received_more)
            except ConnectionResetError as exc:
                raise NetworkError(f"connection to {where} reset by peer") from exc

        def idle_since() -> float:
            return last_activity

        guards = [upstream()]
        if timeouts.idle is not None:
            guards.append(_watchdog(timeouts.idle, idle_since, where))
        await run_beside(downstream(), *guards)
    return Conversation(peer=peer, sent=sent, received=received, closed_by_peer=not source_done)


async def run_beside(main: Coroutine[Any, Any, None], *guards: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` with ``guards`` beside it until ``main`` returns; then stop the guards.

    The first of them to fail stops the others, and its exception is raised as it is,
    not inside an ``ExceptionGroup``: the caller's ``except NetworkError`` (and the CLI's
    one-line message) sees the error that ended the conversation.
    """
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(guard) for guard in guards]
            await main
            for task in tasks:
                task.cancel()
    except BaseExceptionGroup as failed:
        first = failed.exceptions[0]  # in the order they failed; main's own comes last
        raise first from first.__cause__


async def _watchdog(idle: float, last_activity: Callable[[], float], where: str) -> None:
    """Raise ConnectTimeout once nothing has moved for ``idle`` seconds."""
    while True:
        remaining = last_activity() + idle - time.monotonic()
        if remaining <= 0:
            raise ConnectTimeout(f"no data to or from {where} for {idle:g} s")
        await asyncio.sleep(remaining)
