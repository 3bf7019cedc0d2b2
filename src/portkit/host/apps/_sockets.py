"""Applications that need the connected socket itself (forward: splice; exec: a child's stdio).

:class:`SocketApplication` runs an accept loop per listener and hands each admitted
connection, a non-blocking :class:`socket.socket`, to :meth:`SocketApplication.serve`;
it keeps the counters and does the graceful stop, like
:class:`~portkit.host._app.StreamApplication` does for stream pairs.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import errno
import fcntl
import functools
import socket
import struct
import sys
import termios
from collections.abc import Sequence
from typing import Any

# The readiness waits live below client and host (portkit._splice, with the splice loop
# they drive); they are named here too, for the socket applications.
from portkit._splice import wait_readable, wait_writable
from portkit.host._app import (
    AppContext,
    Application,
    Listener,
    admit,
    finish_connections,
    format_peer,
)
from portkit.host._limits import Admission, Slot

__all__ = [
    "SocketApplication",
    "bytes_acked",
    "reset",
    "tcp_byte_counts",
    "wait_readable",
    "wait_writable",
]

#: After running out of file descriptors, wait this long before accepting again.
EMFILE_BACKOFF = 0.1

#: Linux ``struct tcp_info`` (linux/tcp.h): ``tcpi_bytes_acked`` is the u64 at offset 120
#: (Linux 4.1 and later; the structure only ever grows at its end).
_TCP_INFO = getattr(socket, "TCP_INFO", None)
_ACKED_AT = 120
_RECEIVED_AT = 128  # tcpi_bytes_received, the u64 after it
#: ``tcpi_state`` values (include/net/tcp_states.h) once the peer's FIN has arrived ...
_PEER_FIN_STATES = frozenset({6, 8, 9, 11})  # TIME_WAIT, CLOSE_WAIT, LAST_ACK, CLOSING
#: ... and once this side has sent (or queued) its own.
_OWN_FIN_STATES = frozenset({4, 5, 6, 9, 11})  # FIN_WAIT1, FIN_WAIT2, TIME_WAIT, LAST_ACK, CLOSING
_LINGER_RESET = struct.pack("ii", 1, 0)  # struct linger: on, 0 seconds


class SocketApplication(Application):
    """Accept loop + connection tracking; subclasses implement :meth:`serve`."""

    def __init__(self, ctx: AppContext) -> None:
        super().__init__(ctx)
        self._acceptors: list[asyncio.Task[None]] = []
        self._listen_socks: list[socket.socket] = []
        self._tasks: set[asyncio.Task[None]] = set()
        #: Connection limits, checked and counted in the accept loop itself, before the
        #: connection's task exists (see :mod:`portkit.host._limits`); None: no limit.
        self.admission: Admission | None = None

    def admit(self, peer: tuple[str, int]) -> bool:
        """Whether to serve a new connection from ``peer``; default: always."""
        return True

    def release(self, peer: tuple[str, int]) -> None:
        """Called when an admitted connection ends."""

    @abc.abstractmethod
    async def serve(self, conn: socket.socket, peer: tuple[str, int]) -> None:
        """Serve one connection; the caller closes ``conn`` afterwards."""

    async def start(self, listeners: Sequence[Listener]) -> None:
        for listener in listeners:
            self._listen_socks.append(listener.sock)
            self._acceptors.append(asyncio.create_task(self._accept_loop(listener.sock)))

    async def _accept_loop(self, lsock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, addr = await loop.sock_accept(lsock)
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self.counters.errors += 1
                    self.ctx.logger.warning("accept: %s; pausing", exc.strerror)
                    await asyncio.sleep(EMFILE_BACKOFF)
                    continue
                if exc.errno in (errno.ECONNABORTED, errno.EPROTO, errno.EINTR):
                    continue
                raise
            conn.setblocking(False)
            peer = (str(addr[0]), int(addr[1]))
            # Checked and counted here, before the next accept: the loop takes every queued
            # connection without yielding, so a count kept by the new task would come too late.
            slot = admit(self.admission, peer, self.ctx, stopping=False)
            if slot is None or not self.admit(peer):
                if slot is not None:
                    slot.release()
                    self.ctx.access(format_peer(peer), "rejected (limit)")
                self.counters.rejected += 1
                conn.close()
                continue
            self.counters.opened()
            task = asyncio.create_task(self._run(conn, peer))
            self._tasks.add(task)
            # A callback, not a `finally` in the task: a task cancelled before its first
            # step never runs its body, and its place must still be given back.
            task.add_done_callback(functools.partial(self._finished, conn, peer, slot))

    def _finished(
        self, conn: socket.socket, peer: tuple[str, int], slot: Slot, task: asyncio.Task[None]
    ) -> None:
        self._tasks.discard(task)
        self.counters.closed()
        slot.release()
        self.release(peer)
        conn.close()

    async def _run(self, conn: socket.socket, peer: tuple[str, int]) -> None:
        try:
            await self.serve(conn, peer)
        except asyncio.CancelledError:
            raise
        except OSError as exc:
            self.ctx.logger.info("%s: %s", format_peer(peer), exc.strerror or exc)
        except Exception:
            self.counters.errors += 1
            self.ctx.logger.exception("%s: connection failed", format_peer(peer))

    async def stop(self, grace: float) -> None:
        for task in self._acceptors:
            task.cancel()
        for task in self._acceptors:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._acceptors.clear()
        for sock in self._listen_socks:
            sock.close()
        self._listen_socks.clear()
        await finish_connections(self._tasks, grace, self.ctx.logger)


def bytes_acked(sock: Any) -> int | None:
    """How many bytes the peer of TCP socket ``sock`` has acknowledged, or None if unknown.

    What a peer acknowledges is what it took: the measure of a client's reading that
    holds whichever way the bytes went out (sendfile, a transport's buffer, TLS records).
    ``sock`` is a socket or asyncio's transport socket (``get_extra_info("socket")``).
    """
    if _TCP_INFO is None or sock is None:
        return None
    try:
        info: bytes = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, _ACKED_AT + 8)
    except OSError:
        return None
    if len(info) < _ACKED_AT + 8:
        return None
    return int.from_bytes(info[_ACKED_AT : _ACKED_AT + 8], sys.byteorder)


def tcp_byte_counts(sock: socket.socket) -> tuple[int, int] | None:
    """Bytes received and bytes sent on TCP socket ``sock`` so far, or None if unknown.

    For a connection whose bytes the process never sees (an exec program's stdio). Sent
    is what the peer acknowledged plus what still waits in the send queue (``SIOCOUTQ``):
    every byte written is in one or the other.
    """
    if _TCP_INFO is None:
        return None
    try:
        info: bytes = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, _RECEIVED_AT + 8)
        queued = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")  # == SIOCOUTQ
    except OSError:
        return None
    if len(info) < _RECEIVED_AT + 8:
        return None
    acked = int.from_bytes(info[_ACKED_AT : _ACKED_AT + 8], sys.byteorder)
    received = int.from_bytes(info[_RECEIVED_AT : _RECEIVED_AT + 8], sys.byteorder)
    sent = acked + int.from_bytes(queued, sys.byteorder)
    # The kernel counts in sequence numbers, and a FIN takes one (RFC 9293 section 3.4):
    # take it back out where the state says one was received, or sent.
    state = info[0]
    return received - (state in _PEER_FIN_STATES), sent - (state in _OWN_FIN_STATES)


def reset(transport: asyncio.Transport) -> None:
    """Close ``transport`` at once with a TCP reset, dropping what it had not sent yet.

    A plain close leaves the unsent bytes with the kernel, which goes on offering them to
    a peer that does not take them (for minutes, and in memory); a peer dropped for not
    reading gets a reset instead (SO_LINGER with a zero timeout).
    """
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    transport.abort()
