"""Conversations over UDP: datagrams between a local source and sink and one peer.

UDP has no connection and no close, so a conversation ends differently from TCP's:

- each chunk of the source (a line typed at a terminal, a pipe's read) is sent as one
  datagram, cut at :data:`MAX_DATAGRAM` bytes;
- each datagram from the peer goes to the sink as it is;
- once the source has ended, replies are awaited until :data:`UDP_LINGER` seconds pass
  with nothing received (the peer may answer late), then the conversation is over;
- an ICMP port-unreachable answer (RFC 1122 section 4.1.3.3: reported to the
  application) means nothing listens there: :class:`~portkit.ConnectionRefused`.

:func:`converse_udp` talks to a peer; :func:`~portkit.client.listen` with ``udp``
waits for the first datagram and talks with whoever sent it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable

from portkit._errors import ConnectionRefused, NetworkError
from portkit.client._connect import Conversation, _watchdog, run_beside
from portkit.endpoint._authority import host_port
from portkit.endpoint._oserror import network_error

__all__ = ["MAX_DATAGRAM", "UDP_LINGER", "converse_udp"]

#: The largest UDP payload over IPv4: 65535 less the IP (20) and UDP (8) headers.
MAX_DATAGRAM = 65507
#: Seconds to keep waiting for replies after the source has ended and nothing arrives.
UDP_LINGER = 1.0

logger = logging.getLogger(__name__)

Address = tuple[str, int]


class _Datagrams(asyncio.DatagramProtocol):
    """Queues what the socket receives, and the errors the kernel reports on it."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, Address] | Exception | None] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.queue.put_nowait((data, (str(addr[0]), int(addr[1]))))

    def error_received(self, exc: Exception) -> None:
        self.queue.put_nowait(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.queue.put_nowait(exc)


def peer_error(exc: Exception, peer: str) -> NetworkError:
    """The portkit error for what the kernel reported on a UDP socket."""
    if isinstance(exc, ConnectionRefusedError):
        return ConnectionRefused(
            f"udp datagrams to {peer} refused: nothing listens there (ICMP port unreachable)"
        )
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return NetworkError(f"udp conversation with {peer} failed: {reason.lower()}")


async def open_udp(
    *, remote: Address | None = None, local: Address | None = None
) -> tuple[asyncio.DatagramTransport, _Datagrams]:
    """A UDP socket connected to ``remote`` or bound to ``local``, with its queue."""
    loop = asyncio.get_running_loop()
    protocol = _Datagrams()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: protocol, remote_addr=remote, local_addr=local
    )
    return transport, protocol


async def pump_udp(
    transport: asyncio.DatagramTransport,
    protocol: _Datagrams,
    peer: Address,
    source: AsyncIterator[bytes],
    sink: Callable[[bytes], None],
    *,
    connected: bool,
    idle: float | None,
    linger: float,
) -> tuple[int, int]:
    """Move datagrams both ways with ``peer`` until the source ends and replies stop.

    Returns:
        (bytes sent, bytes received).
    """
    sent = received = 0
    last_activity = time.monotonic()
    name = host_port(*peer)

    async def upstream() -> None:
        nonlocal sent, last_activity
        async for chunk in source:
            for start in range(0, len(chunk), MAX_DATAGRAM):
                piece = chunk[start : start + MAX_DATAGRAM]
                # A connected socket has its peer; an unconnected (listening) one is told.
                transport.sendto(piece, None if connected else peer)
                sent += len(piece)
            last_activity = time.monotonic()
            await asyncio.sleep(0)  # let replies and errors in between datagrams
        # The source has ended: wait until no reply has come for `linger` seconds.
        while True:
            remaining = last_activity + linger - time.monotonic()
            if remaining <= 0:
                return
            await asyncio.sleep(remaining)

    async def downstream() -> None:
        nonlocal received, last_activity
        while True:
            item = await protocol.queue.get()
            if isinstance(item, Exception):
                raise peer_error(item, name)
            if item is None:
                raise NetworkError(f"the udp socket for {name} was closed")
            data, sender = item
            if sender != peer and not connected:
                logger.debug(
                    "ignoring a datagram from %s: talking to %s",
                    host_port(sender[0], sender[1]),
                    name,
                )
                continue
            sink(data)
            received += len(data)
            last_activity = time.monotonic()

    def idle_since() -> float:
        return last_activity

    guards = [downstream()]
    if idle is not None:
        guards.append(_watchdog(idle, idle_since, name))
    # The conversation ends when the source has ended and the replies have stopped
    # (upstream returns), or when something fails.
    await run_beside(upstream(), *guards)
    # A refusal reported while the last reply was awaited still counts.
    while not protocol.queue.empty():
        item = protocol.queue.get_nowait()
        if isinstance(item, Exception):
            raise peer_error(item, name)
    return sent, received


async def converse_udp(
    host: str,
    port: int,
    source: AsyncIterator[bytes],
    sink: Callable[[bytes], None],
    *,
    idle: float | None = None,
    linger: float = UDP_LINGER,
    on_connect: Callable[[Address], None] | None = None,
) -> Conversation:
    """Send ``source`` to (``host``, ``port``) as UDP datagrams and its replies to ``sink``.

    Args:
        idle: end with ConnectTimeout when nothing moves either way this long.
        linger: after the source's end, wait this long for replies after the last one.
        on_connect: called with the peer's address once the socket is set up.

    Raises:
        ConnectionRefused: ICMP port unreachable: nothing listens there.
        ConnectTimeout: nothing moved either way for ``idle`` seconds.
        ResolveError, NetworkError.
    """
    try:
        transport, protocol = await open_udp(remote=(host, port))
    except OSError as exc:
        raise network_error(exc, host, port, action="send over udp to") from exc
    try:
        peername = transport.get_extra_info("peername")
        peer = (str(peername[0]), int(peername[1]))
        if on_connect is not None:
            on_connect(peer)
        sent, received = await pump_udp(
            transport, protocol, peer, source, sink, connected=True, idle=idle, linger=linger
        )
    finally:
        transport.close()
    return Conversation(peer=peer, sent=sent, received=received, closed_by_peer=False)
