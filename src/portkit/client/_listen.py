"""Listen mode (``nc -l``): wait for one peer on a local port, then talk with it.

TCP accepts the first connection and stops listening (one conversation, as netcat
does); UDP talks with whoever sends the first datagram. From then on the conversation
is the same as a client's: :func:`~portkit.client.converse`'s half-close and end for
TCP, the linger after the source's end for UDP (see :mod:`portkit.client._udp`).
"""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from portkit._errors import ConnectTimeout, NetworkError, PrivilegeError, ResolveError, UsageError
from portkit.client._connect import BUFFER_LIMIT, Conversation, Timeouts, _pump
from portkit.client._udp import UDP_LINGER, open_udp, peer_error, pump_udp
from portkit.endpoint._authority import host_port

if TYPE_CHECKING:
    from portkit.results import TlsInfo

__all__ = ["DEFAULT_BIND", "listen"]

#: Listen on loopback unless told otherwise: a test listener should not face the network.
DEFAULT_BIND = "127.0.0.1"


def _bind_error(exc: OSError, bind: str, port: int) -> Exception:
    name = host_port(bind, port)
    if isinstance(exc, socket.gaierror):
        return ResolveError(f"cannot resolve the bind address {bind!r}: {exc.strerror}")
    if exc.errno == errno.EACCES:
        return PrivilegeError(f"listening on {name} needs root: ports below 1024 are privileged")
    if exc.errno == errno.EADDRINUSE:
        return NetworkError(
            f"cannot listen on {name}: address already in use "
            f"(see who holds it: portkit listening --port {port})"
        )
    # Python 3.13's create_server skips each address that is not available (EADDRNOTAVAIL,
    # taken to mean a disabled address family) and, when none is left, raises an OSError
    # without an errno: the same case.
    if exc.errno in (errno.EADDRNOTAVAIL, None):
        return UsageError(f"cannot listen on {name}: {bind!r} is not an address of this machine")
    return NetworkError(f"cannot listen on {name}: {(exc.strerror or str(exc)).lower()}")


async def listen(
    port: int,
    source: AsyncIterator[bytes],
    sink: Callable[[bytes], None],
    *,
    transport: str = "tcp",
    bind: str = DEFAULT_BIND,
    timeouts: Timeouts | None = None,
    linger: float = UDP_LINGER,
    on_listening: Callable[[tuple[str, int]], None] | None = None,
    on_connect: Callable[[tuple[str, int], TlsInfo | None], None] | None = None,
) -> Conversation:
    """Listen on (``bind``, ``port``), wait for one peer, then copy bytes both ways.

    Args:
        port: the local port (0: any free one; ``on_listening`` says which).
        transport: ``"tcp"`` or ``"udp"``.
        bind: the local address (default loopback only).
        timeouts: ``idle`` also bounds the wait for the peer (default: no limits).
        linger: UDP only: after the source's end, how long to wait for more.
        on_listening: called with the bound address once listening.
        on_connect: called with the peer's address once it is known.

    Raises:
        PrivilegeError: a port below 1024 without root.
        NetworkError: the address is in use; the peer reset the connection.
        ConnectTimeout: no peer, or no data, within ``timeouts.idle``.
        UsageError: ``bind`` is not an address of this machine, or a bad transport.
    """
    timeouts = timeouts or Timeouts()
    if transport not in ("tcp", "udp"):
        raise UsageError(f"transport must be tcp or udp, not {transport!r}")
    if not 0 <= port <= 65535:
        raise UsageError(f"port must be 0-65535, not {port}")
    if transport == "udp":
        return await _listen_udp(
            port, source, sink, bind, timeouts, linger, on_listening, on_connect
        )
    accepted: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]]
    accepted = asyncio.get_running_loop().create_future()

    def on_accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if accepted.done():
            writer.transport.abort()  # one conversation at a time, as netcat does
        else:
            accepted.set_result((reader, writer))

    try:
        server = await asyncio.start_server(on_accept, bind, port, limit=BUFFER_LIMIT, backlog=1)
    except OSError as exc:
        raise _bind_error(exc, bind, port) from exc
    try:
        local = server.sockets[0].getsockname()
        if on_listening is not None:
            on_listening((str(local[0]), int(local[1])))
        try:
            async with asyncio.timeout(timeouts.idle):
                reader, writer = await accepted
        except TimeoutError as exc:
            raise ConnectTimeout(
                f"no connection to {host_port(str(local[0]), int(local[1]))} "
                f"within {timeouts.idle:g} s"
            ) from exc
    finally:
        server.close()  # stop listening: the first peer is the one we talk with
    return await _pump(reader, writer, source, sink, timeouts=timeouts, on_connect=on_connect)


async def _listen_udp(
    port: int,
    source: AsyncIterator[bytes],
    sink: Callable[[bytes], None],
    bind: str,
    timeouts: Timeouts,
    linger: float,
    on_listening: Callable[[tuple[str, int]], None] | None,
    on_connect: Callable[[tuple[str, int], TlsInfo | None], None] | None,
) -> Conversation:
    try:
        transport, protocol = await open_udp(local=(bind, port))
    except OSError as exc:
        raise _bind_error(exc, bind, port) from exc
    try:
        local_name = transport.get_extra_info("sockname")
        local = (str(local_name[0]), int(local_name[1]))
        if on_listening is not None:
            on_listening(local)
        try:
            async with asyncio.timeout(timeouts.idle):
                first = await protocol.queue.get()
        except TimeoutError as exc:
            raise ConnectTimeout(
                f"no datagram to {host_port(*local)} within {timeouts.idle:g} s"
            ) from exc
        if not isinstance(first, tuple):
            raise peer_error(first or OSError("socket closed"), host_port(*local))
        data, peer = first
        if on_connect is not None:
            on_connect(peer, None)
        sink(data)
        sent, received = await pump_udp(
            transport,
            protocol,
            peer,
            source,
            sink,
            connected=False,
            idle=timeouts.idle,
            linger=linger,
        )
    finally:
        transport.close()
    return Conversation(peer=peer, sent=sent, received=received + len(data), closed_by_peer=False)
