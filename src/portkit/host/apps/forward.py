"""forward: TCP port forwarding to another endpoint (what xinetd's ``redirect`` and socat do).

Each accepted connection gets its own connection to ``to``; bytes are copied both ways
until both directions have ended. Half-close is respected: when one side shuts down its
sending direction (EOF), the forwarder shuts down that direction toward the other side
and keeps copying the opposite way. A reset on either side closes both.

On Linux the copy is zero-copy: ``os.splice`` moves bytes socket -> pipe -> socket inside
the kernel; elsewhere (or with ``splice = false``) it is ``recv``/``sendall``. A backend
that cannot be reached within ``connect_timeout`` closes the client's connection cleanly
(FIN, no data) and counts an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import fcntl
import ipaddress
import os
import socket
import time
from collections.abc import Mapping
from typing import Any

from portkit.host._app import AppContext, Application, Kind, Where, format_peer, option
from portkit.host._limits import Admission
from portkit.host.apps._sockets import SocketApplication, wait_readable, wait_writable

__all__ = ["KINDS", "ForwardApp", "ForwardKind", "ForwardOptions"]

CHUNK = 256 * 1024
PIPE_SIZE = 1024 * 1024
HAVE_SPLICE = hasattr(os, "splice")
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ForwardOptions:
    """Options of a ``forward`` application."""

    to: str = dataclasses.field(metadata={"help": "where to forward: HOST:PORT or [V6]:PORT"})
    max_connections: int = option(
        512, help="connections forwarded at once; more are refused", min=1
    )
    per_source: int | None = option(
        None, help="connections at once from one address; default: half of max_connections", min=1
    )
    connect_timeout: float = option(10.0, help="seconds to reach the backend", min=0.001)
    idle_timeout: float = option(
        600.0, help="seconds without traffic either way before closing", min=0.001
    )
    send_timeout: float = option(
        60.0,
        help="seconds one side may take nothing of what is forwarded to it before both close",
        min=0.001,
    )
    splice: bool = option(True, help="zero-copy with os.splice where the platform has it")


def parse_target(text: str) -> tuple[str, int] | None:
    """``HOST:PORT`` / ``[V6]:PORT`` -> (host, port), or None if malformed."""
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep:
            return None
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return None
    else:
        host, sep, port = text.rpartition(":")
        if not sep or not host or ":" in host:
            return None
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        return None
    return host, int(port)


@dataclasses.dataclass(slots=True)
class _Activity:
    last: float


class ForwardApp(SocketApplication):
    """Copies bytes between each client and its own connection to the backend."""

    def __init__(self, options: ForwardOptions, ctx: AppContext) -> None:
        super().__init__(ctx)
        self.options = options
        target = parse_target(options.to)
        assert target is not None  # checked at configuration load
        self.target = target
        self.use_splice = options.splice and HAVE_SPLICE
        self.admission = Admission(options.max_connections, options.per_source)

    async def serve(self, conn: socket.socket, peer: tuple[str, int]) -> None:
        who = format_peer(peer)
        started = time.monotonic()
        try:
            upstream = await self._connect()
        except OSError as exc:
            self.counters.errors += 1
            self.ctx.logger.warning("%s: backend %s unreachable: %s", who, self.options.to, exc)
            self.ctx.access(who, f"-> {self.options.to} unreachable", nbytes=0)
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)  # a clean close: FIN, then close
            return
        activity = _Activity(last=time.monotonic())
        with upstream:
            up = asyncio.create_task(self._pump(conn, upstream, activity, inbound=True))
            down = asyncio.create_task(self._pump(upstream, conn, activity, inbound=False))
            watchdog = asyncio.create_task(self._watch(activity, (up, down)))
            try:
                await _until_done_or_failed((up, down))
            finally:
                watchdog.cancel()
                for task in (up, down):
                    task.cancel()
        sent, received = (_result(task) for task in (up, down))
        # The direction that failed first names the outcome, not the other one it ended.
        ordered = sorted((up, down), key=lambda task: task.cancelled())
        failed = [_failure(task) for task in ordered if _failure(task)]
        outcome = "closed" if not failed else f"ended: {failed[0]}"
        self.ctx.access(
            who,
            f"-> {self.options.to} {outcome} in {time.monotonic() - started:.3f}s up={sent}",
            nbytes=received,
        )

    async def _connect(self) -> socket.socket:
        loop = asyncio.get_running_loop()
        host, port = self.target
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        last_error: OSError = OSError(f"no address for {host!r}")
        for family, type_, proto, _name, address in infos:
            sock = socket.socket(family, type_, proto)
            sock.setblocking(False)
            try:
                async with asyncio.timeout(self.options.connect_timeout):
                    await loop.sock_connect(sock, address)
            except (OSError, TimeoutError) as exc:
                sock.close()
                last_error = exc if isinstance(exc, OSError) else OSError(f"timed out: {exc}")
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        raise last_error

    async def _watch(self, activity: _Activity, tasks: tuple[asyncio.Task[int], ...]) -> None:
        timeout = self.options.idle_timeout
        while True:
            remaining = activity.last + timeout - time.monotonic()
            if remaining <= 0:
                for task in tasks:
                    task.cancel()
                return
            await asyncio.sleep(remaining)

    async def _pump(
        self, src: socket.socket, dst: socket.socket, activity: _Activity, *, inbound: bool
    ) -> int:
        """Copy ``src`` -> ``dst`` until EOF, then half-close ``dst``; return bytes copied."""
        if self.use_splice:
            total = await self._pump_splice(src, dst, activity, inbound=inbound)
        else:
            total = await self._pump_copy(src, dst, activity, inbound=inbound)
        # EOF from src: pass the half-close on (RFC 9293 section 3.6: FIN in one direction).
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)
        return total

    def _send_timeout(self) -> TimeoutError:
        # A peer that takes nothing holds a pipe full of data and both sockets; without
        # this, a side that keeps sending while never reading keeps the idle timer fresh.
        seconds = self.options.send_timeout
        return TimeoutError(errno.ETIMEDOUT, f"send timeout: nothing taken for {seconds}s")

    def _count(self, n: int, *, inbound: bool) -> None:
        if inbound:
            self.counters.bytes_in += n
        else:
            self.counters.bytes_out += n

    async def _pump_copy(
        self, src: socket.socket, dst: socket.socket, activity: _Activity, *, inbound: bool
    ) -> int:
        loop = asyncio.get_running_loop()
        total = 0
        while True:
            data = await loop.sock_recv(src, CHUNK)
            if not data:
                return total
            try:
                async with asyncio.timeout(self.options.send_timeout):
                    await loop.sock_sendall(dst, data)
            except TimeoutError:
                raise self._send_timeout() from None
            total += len(data)
            activity.last = time.monotonic()
            self._count(len(data), inbound=inbound)

    async def _pump_splice(
        self, src: socket.socket, dst: socket.socket, activity: _Activity, *, inbound: bool
    ) -> int:
        flags = os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK
        read_end, write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            with contextlib.suppress(OSError):  # a bigger pipe means fewer round trips
                fcntl.fcntl(write_end, F_SETPIPE_SZ, PIPE_SIZE)
            src_fd, dst_fd = src.fileno(), dst.fileno()
            total = 0
            while True:
                try:
                    n = os.splice(src_fd, write_end, CHUNK, flags=flags)
                except BlockingIOError:
                    await wait_readable(src_fd)
                    continue
                if n == 0:
                    return total
                pending = n
                while pending:  # the pipe is empty again before the next read
                    try:
                        pending -= os.splice(read_end, dst_fd, pending, flags=flags)
                    except BlockingIOError:
                        try:
                            async with asyncio.timeout(self.options.send_timeout):
                                await wait_writable(dst_fd)
                        except TimeoutError:
                            raise self._send_timeout() from None
                total += n
                activity.last = time.monotonic()
                self._count(n, inbound=inbound)
        finally:
            os.close(read_end)
            os.close(write_end)


async def _until_done_or_failed(tasks: tuple[asyncio.Task[int], ...]) -> None:
    """Wait for both directions to end; if one fails (reset, idle), cancel the other."""
    pending = set(tasks)
    while pending:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        if any(_failure(task) for task in done):
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
            return


def _result(task: asyncio.Task[int]) -> int:
    return task.result() if task.done() and not _failure(task) else 0


def _failure(task: asyncio.Task[int]) -> str:
    if not task.done():
        return ""
    if task.cancelled():
        return "idle timeout or stop"
    exc = task.exception()
    return "" if exc is None else (getattr(exc, "strerror", None) or repr(exc))


@dataclasses.dataclass(frozen=True, slots=True)
class ForwardKind:
    """The ``forward`` kind."""

    name: str = "forward"
    options: type[ForwardOptions] = ForwardOptions

    def check(self, options: ForwardOptions, where: Where) -> None:
        if parse_target(options.to) is None:
            raise where.error(
                "to", f"must be HOST:PORT or [V6]:PORT with a port 1-65535, not {options.to!r}"
            )

    def create(self, options: ForwardOptions, ctx: AppContext) -> Application:
        return ForwardApp(options, ctx)


KINDS: Mapping[str, Kind[Any]] = {"forward": ForwardKind()}
