"""UDP identification: the probes likely for the port, then every other one at once.

A UDP server answers only a request it understands. :func:`identify_udp` sends the
catalogue's UDP probes (``portkit.proto.UDP_PROBES``) from one socket in rounds, and
judges every datagram that comes back with every UDP matcher.

The socket is not connected: a connected UDP socket only takes datagrams from the
port it sent to, and some servers answer from another one (TFTP, RFC 1350 section 4:
each transfer gets a new port, its transfer ID). Datagrams from any port of the
target's address are taken; datagrams from other addresses are not. ICMP port
unreachable, which Linux reports only to connected sockets by default, is asked for
with ``IP_RECVERR`` (ip(7)) so a closed port is still told apart from a silent one.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket

from portkit._errors import ConnectionRefused
from portkit.endpoint import network_error
from portkit.proto import UDP_PROBES, Match, Probe, matchers_for, probes_for
from portkit.scan._channel import EVIDENCE_BYTES, is_echo, where
from portkit.scan._model import Identification

__all__ = ["LIGHT_UDP_PROBES", "UDP_WAIT", "identify_udp"]

UDP_WAIT = 0.6
"""Seconds to wait for the answers to one round of UDP probes."""
LIGHT_UDP_PROBES = 4
"""UDP probes a light identification sends to a port the registry names nothing for:
the first of the catalogue (DNS, NTP, SNMP v3 and v2c)."""

_UDP_MATCHERS = tuple(dict.fromkeys(m for p in UDP_PROBES for m in matchers_for(p)))

# <linux/in.h> and <linux/in6.h>; the socket module does not name them.
_IP_RECVERR = 11
_IPV6_RECVERR = 25


class _UdpProtocol(asyncio.DatagramProtocol):
    """Datagrams from any port of ``host``, and the socket's errors."""

    def __init__(self, host: str) -> None:
        self.host = ipaddress.ip_address(host)
        self.queue: asyncio.Queue[bytes | Exception] = asyncio.Queue(maxsize=64)

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        try:
            sender = ipaddress.ip_address(str(addr[0]).partition("%")[0])
        except ValueError:
            return
        if sender != self.host:
            return  # only the target's answers, from whichever of its ports
        with contextlib.suppress(asyncio.QueueFull):  # a flood: keep the first ones
            self.queue.put_nowait(data[: 16 * 1024])

    def error_received(self, exc: Exception) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(exc)


def _udp_rounds(expected: str | None, light: bool = False) -> tuple[tuple[Probe, ...], ...]:
    """The UDP probes in rounds: those likely for the port, then every other one at once.

    A round waits :data:`UDP_WAIT` for answers (or its slowest probe's own wait), so a
    silent port costs two rounds, not one wait per probe. A port the registry names no
    UDP probe for gets them all at once. ``light`` (``--detect=light``) keeps the first
    round only, and of a port the registry names nothing for, the first
    :data:`LIGHT_UDP_PROBES` of the catalogue.
    """
    order = probes_for(expected, "udp")
    wanted = expected.lower() if expected else None
    likely = tuple(p for p in order if wanted is not None and wanted in p.services)
    if light:
        return (likely or order[:LIGHT_UDP_PROBES],)
    if not likely:
        return (order,)
    return (likely, order[len(likely) :])


def _udp_probe_of(sent: list[tuple[Probe, bytes]], service: str | None) -> str:
    """The name of the probe of this round that asked ``service``, else the first one's."""
    return next((p.name for p, _ in sent if service in p.services), sent[0][0].name)


async def _address(host: str, port: int) -> tuple[str, int]:
    """``host`` as the numeric address to send to and to take answers from."""
    try:
        return (str(ipaddress.ip_address(host.partition("%")[0])), port)
    except ValueError:
        pass
    # A name (the scan hands over addresses; probe may be given a name): its first address.
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except OSError as exc:
        raise network_error(exc, host, port, action="resolve") from None
    return (str(infos[0][4][0]), port)


def _unconnected(address: tuple[str, int]) -> socket.socket:
    """A non-blocking UDP socket on any port, told ICMP errors (IP_RECVERR)."""
    v6 = ipaddress.ip_address(address[0]).version == 6
    sock = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
    try:
        if v6:
            sock.setsockopt(socket.IPPROTO_IPV6, _IPV6_RECVERR, 1)
        else:
            sock.setsockopt(socket.IPPROTO_IP, _IP_RECVERR, 1)
        sock.bind(("::" if v6 else "0.0.0.0", 0))  # the local end: any address, any port
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


async def identify_udp(
    host: str, port: int, expected: str | None, deadline: float, *, light: bool = False
) -> Identification:
    loop = asyncio.get_running_loop()
    address = await _address(host, port)
    try:
        transport, proto = await loop.create_datagram_endpoint(
            lambda: _UdpProtocol(address[0]), sock=_unconnected(address)
        )
    except OSError as exc:
        raise network_error(exc, host, port, action="send over udp to") from None
    evidence = b""
    echoes = 0
    try:
        for round_ in _udp_rounds(expected, light):
            if loop.time() >= deadline:
                break
            sent = [(probe, probe.build(host)) for probe in round_]
            for _probe, payload in sent:
                try:
                    transport.sendto(payload, address)
                except OSError as exc:
                    raise network_error(exc, host, port, action="send over udp to") from None
            # A round waits for its slowest server (a RADIUS reject is held back 1 s).
            wait = max((p.wait or UDP_WAIT for p, _ in sent), default=UDP_WAIT)
            end = min(loop.time() + wait, deadline)
            while True:
                try:
                    async with asyncio.timeout(max(end - loop.time(), 0.0)):
                        item = await proto.queue.get()
                except TimeoutError:
                    break
                if isinstance(item, ConnectionRefusedError):
                    raise ConnectionRefused(f"{where(host, port)}/udp is closed (port unreachable)")
                if isinstance(item, Exception):
                    continue
                evidence = evidence or item[:EVIDENCE_BYTES]
                if any(is_echo(payload, item) for _probe, payload in sent):
                    echoes += 1
                    continue
                # A late answer to an earlier probe counts too: judge with every matcher.
                for matcher in _UDP_MATCHERS:
                    verdict = matcher(item, True)
                    if isinstance(verdict, Match):
                        return Identification(
                            service=verdict.service,
                            product=verdict.product,
                            version=verdict.version,
                            extra=verdict.extra,
                            confidence=verdict.confidence,
                            probe=_udp_probe_of(sent, verdict.service),
                            evidence=item[:EVIDENCE_BYTES],
                        )
    finally:
        transport.close()
    return Identification(
        service=None,
        extra=(
            "the server echoes what it is sent"
            if echoes
            else ("no probe matched" if evidence else "no answer to any probe")
        ),
        evidence=evidence,
    )
