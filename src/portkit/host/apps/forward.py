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
import functools
import socket
import time
from collections.abc import Mapping
from typing import Any

from portkit._errors import EndpointError
from portkit._splice import CHUNK, HAVE_SPLICE, splice_copy
from portkit.endpoint import parse_endpoint
from portkit.host._app import AppContext, Application, Kind, Where, format_peer, option
from portkit.host._limits import Admission
from portkit.host.apps._sockets import SocketApplication

__all__ = ["KINDS", "ForwardApp", "ForwardKind", "ForwardOptions"]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ForwardOptions:
    """Options of a ``forward`` application."""

    to: str = dataclasses.field(
        metadata={"help": "where to forward: HOST:PORT, [V6]:PORT, HOST:SERVICE or a URL"}
    )
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


def parse_target(text: str) -> tuple[str, int]:
    """Where ``to`` forwards: ``HOST:PORT``, ``[V6]:PORT``, ``HOST:SERVICE`` or a URL ->
    (host, port), read by the endpoint parser every command uses (``portkit connect``'s).

    Raises:
        EndpointError: not one of those forms, port 0, or a UDP service (forward is TCP);
            the message quotes the text.
    """
    endpoint = parse_endpoint(text)
    if endpoint.transport != "tcp":
        raise EndpointError(f"forward is TCP, not {endpoint.transport}: {text!r}")
    if endpoint.port == 0:
        raise EndpointError(f"cannot forward to port 0 in {text!r}: nothing can listen on port 0")
    return endpoint.host, endpoint.port


@dataclasses.dataclass(slots=True, kw_only=True)
class _Traffic:
    """What one forwarded connection has moved so far, and when it last moved anything."""

    last: float  # time.monotonic() of the last bytes either way
    up: int = 0  # client -> backend
    down: int = 0  # backend -> client


class ForwardApp(SocketApplication):
    """Copies bytes between each client and its own connection to the backend."""

    def __init__(self, options: ForwardOptions, ctx: AppContext) -> None:
        super().__init__(ctx)
        self.options = options
        self.target = parse_target(options.to)  # checked at configuration load
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
        traffic = _Traffic(last=time.monotonic())
        outcome = "closed"
        with upstream:
            try:
                async with asyncio.TaskGroup() as group:
                    pumps = (
                        group.create_task(self._pump(conn, upstream, traffic, inbound=True)),
                        group.create_task(self._pump(upstream, conn, traffic, inbound=False)),
                    )
                    await self._until_done_or_idle(traffic, pumps)
            except* OSError as failed:
                # A failure (reset, send timeout, idle) ended the other direction too; the
                # one that came first names the outcome.
                first = failed.exceptions[0]
                outcome = f"ended: {getattr(first, 'strerror', None) or repr(first)}"
        self.ctx.access(
            who,
            f"-> {self.options.to} {outcome} in {time.monotonic() - started:.3f}s up={traffic.up}",
            nbytes=traffic.down,
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

    async def _until_done_or_idle(
        self, traffic: _Traffic, pumps: tuple[asyncio.Task[None], ...]
    ) -> None:
        """Return once both directions have ended; raise once nothing moved for too long."""
        timeout = self.options.idle_timeout
        while True:
            remaining = traffic.last + timeout - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(errno.ETIMEDOUT, f"idle timeout: nothing moved for {timeout}s")
            _, pending = await asyncio.wait(pumps, timeout=remaining)
            if not pending:
                return

    async def _pump(
        self, src: socket.socket, dst: socket.socket, traffic: _Traffic, *, inbound: bool
    ) -> None:
        """Copy ``src`` -> ``dst`` until EOF, then half-close ``dst``."""
        if self.use_splice:
            await self._pump_splice(src, dst, traffic, inbound=inbound)
        else:
            await self._pump_copy(src, dst, traffic, inbound=inbound)
        # EOF from src: pass the half-close on (RFC 9293 section 3.6: FIN in one direction).
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def _send_timeout(self) -> TimeoutError:
        # A peer that takes nothing holds a pipe full of data and both sockets; without
        # this, a side that keeps sending while never reading keeps the idle timer fresh.
        seconds = self.options.send_timeout
        return TimeoutError(errno.ETIMEDOUT, f"send timeout: nothing taken for {seconds}s")

    def _moved(self, n: int, traffic: _Traffic, *, inbound: bool) -> None:
        traffic.last = time.monotonic()
        if inbound:
            traffic.up += n
            self.counters.bytes_in += n
        else:
            traffic.down += n
            self.counters.bytes_out += n

    async def _pump_copy(
        self, src: socket.socket, dst: socket.socket, traffic: _Traffic, *, inbound: bool
    ) -> None:
        loop = asyncio.get_running_loop()
        while data := await loop.sock_recv(src, CHUNK):
            try:
                async with asyncio.timeout(self.options.send_timeout):
                    await loop.sock_sendall(dst, data)
            except TimeoutError:
                raise self._send_timeout() from None
            self._moved(len(data), traffic, inbound=inbound)

    async def _pump_splice(
        self, src: socket.socket, dst: socket.socket, traffic: _Traffic, *, inbound: bool
    ) -> None:
        await splice_copy(
            src.fileno(),
            dst.fileno(),
            functools.partial(self._moved, traffic=traffic, inbound=inbound),
            send_timeout=self.options.send_timeout,
            expired=self._send_timeout,
        )


@dataclasses.dataclass(frozen=True, slots=True)
class ForwardKind:
    """The ``forward`` kind."""

    name: str = "forward"
    options: type[ForwardOptions] = ForwardOptions

    def check(self, options: ForwardOptions, where: Where) -> None:
        try:
            parse_target(options.to)
        except EndpointError as exc:
            raise where.error("to", str(exc)) from None

    def create(self, options: ForwardOptions, ctx: AppContext) -> Application:
        return ForwardApp(options, ctx)


KINDS: Mapping[str, Kind[Any]] = {"forward": ForwardKind()}
