"""The socket transports: TCP connect and UDP probes over non-blocking sockets.

One ``epoll`` set holds every probe in flight; the event loop watches only the epoll
descriptor, so a probe costs a socket, a ``connect`` and one readiness event, not an
asyncio transport and a future. The policy (window, back-off, rate, retries with
doubling deadlines, the silent state: filtered, UDP open|filtered) is the
:class:`~portkit.scan._schedule.ProbeScheduler`'s and the loop is
:func:`~portkit.scan._drive.drive`; this module only moves bytes:

- the ceiling of the window (probes in flight) is sized from ``RLIMIT_NOFILE`` after
  raising the soft limit to the hard one, so a scan never fails with "too many open
  files"; a socket the kernel refuses (out of ports or descriptors) halves it;
- a TCP connect whose local address equals its peer (the loopback "self-connect" when
  the kernel picks the destination port as the source port) is reported closed, never
  open.
"""

from __future__ import annotations

import dataclasses
import enum
import errno
import os
import select
import socket
import struct
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from portkit._rlimit import raise_fd_limit
from portkit.results import Batches, CountKey, PortState
from portkit.scan._drive import drive
from portkit.scan._schedule import MIN_WINDOW, Policy, ProbeScheduler
from portkit.scan._targets import Target

__all__ = [
    "DEFAULT_RETRIES",
    "DEFAULT_TIMEOUT",
    "EngineOptions",
    "ProbeKind",
    "run_socket_engine",
    "window_size",
]

DEFAULT_TIMEOUT = 1.0  # seconds before an unanswered probe is sent again
DEFAULT_RETRIES = 2  # re-sends of an unanswered probe before calling it filtered
DEFAULT_WINDOW = 8192  # probes in flight, when the descriptor limit allows
_FD_RESERVE = 128  # descriptors left for the rest of the process (logs, output, loop)
_LINGER_ABORT = struct.pack("ii", 1, 0)  # close with RST: no TIME_WAIT left behind
_READY_CAP = 1024  # events taken from epoll per call
EINPROGRESS = errno.EINPROGRESS
ECONNREFUSED = errno.ECONNREFUSED
CLOSED = PortState.CLOSED
monotonic = time.monotonic


class ProbeKind(enum.Enum):
    """What a probe sends and how its answer reads."""

    TCP_CONNECT = "tcp"
    UDP = "udp"


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineOptions:
    """Knobs of one scan: timing, retries, window and rate ceilings."""

    timeout: float = DEFAULT_TIMEOUT
    retries: int = DEFAULT_RETRIES
    rate: float | None = None  # probes per second, a ceiling
    concurrency: int | None = None  # probes in flight, a ceiling

    def share(self, parts: int) -> EngineOptions:
        """Each of ``parts`` engines' options when they run one scan together.

        The ceilings (``rate``, ``concurrency``) are for the whole scan, however many
        processes or cluster workers it runs in: each part gets an equal share, rounded
        down, so together they never go past them. With fewer probes in flight allowed
        than parts, each part still gets one: run at most ``concurrency`` parts.
        """
        if parts <= 1:
            return self
        return dataclasses.replace(
            self,
            rate=None if self.rate is None else self.rate / parts,
            concurrency=None if self.concurrency is None else max(1, self.concurrency // parts),
        )


def window_size(concurrency: int | None) -> int:
    """Return how many probes may be in flight: the ceiling asked for, fitted to the fd limit."""
    limit = raise_fd_limit()
    try:
        in_use = len(os.listdir("/proc/self/fd"))
    except OSError:
        in_use = 64
    room = max(MIN_WINDOW, limit - in_use - _FD_RESERVE)
    wanted = DEFAULT_WINDOW if concurrency is None else concurrency
    return max(1, min(wanted, room))


def _sockaddr(target: Target, port: int) -> tuple[str, int] | tuple[str, int, int, int]:
    if target.family == socket.AF_INET6:
        return (target.address, port, 0, 0)
    return (target.address, port)


_FILTERED_ERRNOS = {
    errno.EHOSTUNREACH: "host-unreach",
    errno.ENETUNREACH: "net-unreach",
    errno.EACCES: "admin-prohibited",
    errno.EPERM: "admin-prohibited",
}
_RESOURCE_ERRNOS = {errno.EADDRNOTAVAIL, errno.EAGAIN, errno.EMFILE, errno.ENFILE, errno.ENOBUFS}


class _SocketTransport:
    """TCP connect or UDP probes on non-blocking sockets, answers from one epoll set.

    Outstanding probes are keyed by their socket's descriptor. ``names[port]`` (the
    registry's name of each port) picks a UDP probe's datagram.
    """

    def __init__(
        self,
        kind: ProbeKind,
        scheduler: ProbeScheduler[int],
        names: Sequence[str | None] | None = None,
        count_after: int | None = None,
    ) -> None:
        self.transport = kind.value
        self._names = names
        self._tcp = kind is ProbeKind.TCP_CONNECT
        self._scheduler = scheduler
        self._ep = select.epoll()
        self._mask = (select.EPOLLOUT if self._tcp else select.EPOLLIN) | select.EPOLLONESHOT
        self._inflight: dict[int, socket.socket] = {}
        self._registered: set[int] = set()  # fds known to the epoll set (oneshot: re-armed by MOD)
        self._spare: dict[int, list[socket.socket]] = {socket.AF_INET: [], socket.AF_INET6: []}
        # With count_after (TCP): a host's ports refused at once, past that many made
        # into rows, are only counted (the CLI's reports only count them).
        self._count_after = count_after if self._tcp else None
        # Keyed by address, not Target: a frozen dataclass hashes in Python, a str once.
        self._made_refused: dict[str, int] = {}
        self._full: set[str] = set()  # hosts past count_after rows of them
        self._refused_counted: list[str] = []  # one address per port counted

        # TCP sockets connect from one source port, chosen by the kernel for an anchor
        # socket that holds it for the scan (see _tcp_socket).
        self._anchors: dict[int, socket.socket | None] = {}

    def descriptors(self) -> list[int]:
        return [self._ep.fileno()]

    def _anchor(self, family: int) -> socket.socket | None:
        """A socket holding this scan's source port for ``family`` (None: none could)."""
        try:
            anchor = socket.socket(family, socket.SOCK_STREAM)
        except OSError:
            return None
        try:
            anchor.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            anchor.bind(("::", 0, 0, 0) if family == socket.AF_INET6 else ("0.0.0.0", 0))
        except OSError:
            anchor.close()
            return None
        return anchor

    def _tcp_socket(self, family: int) -> socket.socket:
        """A new TCP socket, bound to the scan's source port when one is held.

        Bound explicitly, a socket keeps its port across the connects it is reused
        for, and the kernel skips choosing and hashing an ephemeral port on each
        (measured over a veth link: 7.7 us against 9.1 us per refused connect). Every
        connect from the port goes to a different (address, port) at any moment: a
        probe's socket is closed before its probe is sent again, and open ports are
        closed with a RST, so no TIME_WAIT holds a four-tuple. The anchor (bound, never
        connected) keeps the port from the kernel's ephemeral choices meanwhile
        (SO_REUSEADDR lets the scan's sockets share it, and a port so bound is one the
        kernel does not hand to other connects).
        """
        sock = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
        if family not in self._anchors:
            self._anchors[family] = self._anchor(family)
        anchor = self._anchors[family]
        if anchor is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(anchor.getsockname())
            except OSError:
                # The port is taken after all: this socket takes an ephemeral port as
                # an unbound one does (a fresh socket: the failed bind left nothing).
                sock.close()
                sock = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
        return sock

    def take_counts(self) -> dict[CountKey, int] | None:
        if self._count_after is None:
            return None
        counted, self._refused_counted = self._refused_counted, []
        return {
            (address, "tcp", CLOSED, "conn-refused"): count
            for address, count in Counter(counted).items()
        }

    def close(self) -> None:
        for sock in self._inflight.values():
            sock.close()
        self._inflight.clear()
        for pool in self._spare.values():
            for sock in pool:
                sock.close()
        self._ep.close()
        for anchor in self._anchors.values():
            if anchor is not None:
                anchor.close()

    def _discard(self, sock: socket.socket) -> None:
        self._registered.discard(sock.fileno())
        sock.close()

    def _wait_for(self, fd: int, sock: socket.socket) -> None:
        if fd in self._registered:
            self._ep.modify(fd, self._mask)
        else:
            self._ep.register(fd, self._mask)
            self._registered.add(fd)
        self._inflight[fd] = sock

    def expired(self, keys: list[int]) -> None:
        inflight = self._inflight
        for fd in keys:
            sock = inflight.pop(fd, None)
            if sock is not None:
                self._discard(sock)

    def _settle_tcp(self, fd: int, sock: socket.socket, err: int, now: float) -> None:
        """Classify a TCP connect outcome; ``EALREADY`` means still waiting."""
        scheduler = self._scheduler
        if err == ECONNREFUSED:
            self._spare[
                socket.AF_INET6 if sock.family == socket.AF_INET6 else socket.AF_INET
            ].append(sock)  # unconnected again: reuse it
            scheduler.answer(fd, CLOSED, "conn-refused", now)
        elif err in (0, errno.EISCONN):
            try:
                self_connect = sock.getsockname() == sock.getpeername()
            except OSError:
                self_connect = False
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ABORT)
            self._discard(sock)
            if self_connect:
                # Nobody listens: the kernel joined our socket to itself (source port ==
                # destination port on the same address). That is a closed port.
                scheduler.answer(fd, CLOSED, "self-connect", now)
            else:
                scheduler.answer(fd, PortState.OPEN, "syn-ack", now)
        elif err in (errno.EALREADY, errno.EINPROGRESS):
            self._wait_for(fd, sock)
        else:
            self._discard(sock)
            self._settle_error(fd, err, now)

    def _settle_error(self, fd: int, err: int, now: float) -> None:
        scheduler = self._scheduler
        if err == errno.ETIMEDOUT:
            scheduler.unanswered(fd, now)
        elif err in _FILTERED_ERRNOS:
            # An ICMP error is an answer, but not one that says the path is clear.
            scheduler.answer(fd, PortState.FILTERED, _FILTERED_ERRNOS[err], now, grow=False)
        else:
            scheduler.drop(fd, PortState.FILTERED, errno.errorcode.get(err, str(err)).lower())

    def _settle_udp(self, fd: int, sock: socket.socket, err: int, now: float) -> None:
        if err == 0:
            try:
                sock.recv(1)
            except BlockingIOError:
                self._wait_for(fd, sock)  # a spurious wake-up: keep waiting
                return
            except OSError as exc:
                err = exc.errno or errno.EIO
            else:
                self._discard(sock)
                self._scheduler.answer(fd, PortState.OPEN, "udp-response", now)
                return
        self._discard(sock)
        if err == errno.ECONNREFUSED:
            self._scheduler.answer(fd, CLOSED, "port-unreach", now)
        else:
            self._settle_error(fd, err, now)

    def receive(self, now: float) -> None:
        inflight = self._inflight
        outstanding = self._scheduler.outstanding
        while True:
            ready = self._ep.poll(0, _READY_CAP)
            for fd, _mask in ready:
                sock = inflight.pop(fd, None)
                if sock is None:
                    continue
                if self._tcp:
                    target, port = outstanding[fd][:2]
                    self._settle_tcp(fd, sock, sock.connect_ex(_sockaddr(target, port)), now)
                else:
                    err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    self._settle_udp(fd, sock, err, now)
            if len(ready) < _READY_CAP:
                return

    def launch(self, now: float, most: int | None) -> None:
        scheduler = self._scheduler
        # At most ``most`` probes in all, not per take: probes refused at once are never
        # outstanding, so the window alone would let one call run a near host's whole
        # plan, and every row of it would wait in memory for the call to end (a /16 x
        # --top 100 scan reached 486 MB that way).
        left = most
        while left is None or left > 0:
            attempt, probes = scheduler.take(now, left)
            if not probes:
                return
            refused = self._launch(attempt, probes)
            # The ports refused at once were answers: counted after the batch, which
            # is the same for the window (take reads it once per batch).
            scheduler.answered_at_once(refused)
            if left is not None:
                left -= len(probes)

    def _launch(self, attempt: int, probes: list[tuple[Target, int]]) -> int:
        """Send ``probes``; return how many were refused before ``connect`` returned.

        Those (the common case over a near link: a closed port's RST is processed
        before the second ``connect`` of the same probe) are finished here, without
        a call into the scheduler per port: a row, or with ``count_after`` a count
        once the host has that many rows of them. Every other outcome goes through
        the scheduler as it comes, with the refusals so far told to it first.
        """
        scheduler = self._scheduler
        tcp = self._tcp
        spare = self._spare
        sent = scheduler.sent
        rows_append = scheduler.rows.append
        count_after = self._count_after
        if not tcp:
            # Here: a TCP scan has no use for the protocol modules (40 ms of imports).
            from portkit.proto import udp_payload
        made = self._made_refused
        full = self._full
        count = self._refused_counted.append
        refused = 0
        for index, (target, port) in enumerate(probes):
            host = target.address
            if ":" in host:
                family = socket.AF_INET6
                address: tuple[str, int] | tuple[str, int, int, int] = (host, port, 0, 0)
            else:
                family = socket.AF_INET
                address = (host, port)
            pool = spare[family]
            try:
                if not tcp:
                    sock = socket.socket(family, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK)
                elif pool:
                    sock = pool.pop()
                else:
                    sock = self._tcp_socket(family)
            except OSError as exc:
                if exc.errno not in _RESOURCE_ERRNOS:
                    raise
                err = exc.errno
            else:
                began = monotonic()
                err = sock.connect_ex(address)
                if tcp:
                    if err == EINPROGRESS:
                        err = sock.connect_ex(address)  # the answer, if it is already here
                    if err == ECONNREFUSED:
                        # The common case, at once: refused before connect returned
                        # (loopback, or a very near host). The socket is unconnected
                        # again: reuse it.
                        pool.append(sock)
                        refused += 1
                        if count_after is not None:
                            if host in full:
                                count(host)
                                continue
                            done = made.get(host, 0)
                            if done >= count_after:
                                full.add(host)
                                count(host)
                                continue
                            made[host] = done + 1
                        rows_append((target, port, CLOSED, "conn-refused", monotonic() - began))
                        continue
                if err in _RESOURCE_ERRNOS:
                    self._discard(sock)
            if refused:
                # What follows reads the scheduler's answer count (a probe sent
                # now remembers it): bring it up to date first.
                scheduler.answered_at_once(refused)
                refused = 0
            if err in _RESOURCE_ERRNOS:
                # Out of ports or descriptors: put the rest back, shrink, let answers drain.
                scheduler.give_back(probes[index:], attempt)
                scheduler.short_of_resources()
                return 0
            fd = sock.fileno()
            sent(fd, target, port, attempt, began)
            if tcp:
                self._settle_tcp(fd, sock, err, monotonic())
            elif err:
                self._settle_udp(fd, sock, err, began)
            else:
                # The request likely for the port first, another one on each re-send.
                name = None if self._names is None else self._names[port]
                try:
                    sock.send(udp_payload(name, attempt, host))
                except OSError as exc:
                    self._settle_udp(fd, sock, exc.errno or errno.EIO, began)
                else:
                    self._wait_for(fd, sock)
        return refused


def run_socket_engine(
    probes: Iterator[tuple[Target, int]],
    kind: ProbeKind,
    options: EngineOptions,
    names: Sequence[str | None] | None = None,
    *,
    count_after: int | None = None,
) -> Batches:
    """Probe every (target, port) of ``probes``; yield results in batches as they come.

    Only as many probes are taken from ``probes`` as fit the window (and at most
    ``READY_CAP`` at a time, the rows handed over at once), so memory stays
    bounded whatever the size of the scan. Closing the generator (``aclose``, a break,
    Ctrl-C) closes every socket still in flight. ``names[port]`` is each result's
    ``expected`` service name. With ``count_after`` (TCP), once that many closed ports
    of a host have been yielded as results, its further ports refused at once are
    yielded as counts (:attr:`ResultBatch.counts`): the CLI's reports only count them.

    TCP sockets are reused: on Linux a second ``connect`` on a non-blocking socket
    whose first attempt has completed returns that attempt's result (``ECONNREFUSED``,
    ``EISCONN``) and, after a refusal, leaves the socket unconnected and ready for the
    next port. On loopback the answer is there before the first ``connect`` returns,
    so a closed port costs two system calls and no socket; elsewhere the second call
    says ``EALREADY`` and the socket waits in the epoll set.
    """
    policy = Policy(
        timeout=options.timeout,
        retries=options.retries,
        rate=options.rate,
        ceiling=window_size(options.concurrency),
        silent=PortState.FILTERED if kind is ProbeKind.TCP_CONNECT else PortState.OPEN_FILTERED,
        # TCP answers come from the target's kernel: their round trips measure the path.
        # A UDP answer comes from an application, as slow as it likes: a wait learnt
        # from port unreachables would give up on it.
        adaptive=kind is ProbeKind.TCP_CONNECT,
    )
    scheduler: ProbeScheduler[int] = ProbeScheduler(probes, policy, monotonic())
    return drive(_SocketTransport(kind, scheduler, names, count_after), scheduler, names)
