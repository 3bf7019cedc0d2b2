"""The socket engines: TCP connect and UDP probes over raw non-blocking sockets.

One ``epoll`` set holds every probe in flight; the event loop watches only the epoll
descriptor, so a probe costs a socket, a ``connect`` and one readiness event, not an
asyncio transport and a future. The engine is an async generator of result batches:

- the *window* (probes in flight) is sized from ``RLIMIT_NOFILE`` after raising the soft
  limit to the hard one, so a scan never fails with "too many open files";
- probes that get no answer within the timeout are sent again (``retries``), each time
  with a doubled timeout, before the port is called filtered (UDP: open|filtered);
- ``rate`` is a ceiling on probes started per second (a token bucket);
- back-off: a probe that goes unanswered while the same scan keeps getting answers
  halves the window (at most once per timeout period); every answer grows it by one
  probe again, up to the ceiling (additive increase, multiplicative decrease, as TCP
  does, RFC 5681 section 3.1);
- a TCP connect whose local address equals its peer (the loopback "self-connect" when
  the kernel picks the destination port as the source port) is reported closed, never
  open.

Answers are read before deadlines are checked, with the clock read before the read,
so a slow consumer or a busy machine can delay a result but never turn an answered
probe into a timeout.
"""

from __future__ import annotations

import asyncio
import enum
import errno
import logging
import os
import resource
import select
import socket
import struct
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable, Iterator, Sequence
from dataclasses import dataclass

from portkit.proto import udp_payload
from portkit.scan._model import PortResult, PortState
from portkit.scan._names import result_maker
from portkit.scan._targets import Target

__all__ = [
    "DEFAULT_RETRIES",
    "DEFAULT_TIMEOUT",
    "EngineOptions",
    "ProbeKind",
    "RateLimiter",
    "raise_fd_limit",
    "run_socket_engine",
    "window_size",
]

log = logging.getLogger("portkit.scan")

DEFAULT_TIMEOUT = 1.0  # seconds before an unanswered probe is sent again
DEFAULT_RETRIES = 2  # re-sends of an unanswered probe before calling it filtered
DEFAULT_WINDOW = 8192  # probes in flight, when the descriptor limit allows
MIN_WINDOW = 16
_FD_RESERVE = 128  # descriptors left for the rest of the process (logs, output, loop)
_LINGER_ABORT = struct.pack("ii", 1, 0)  # close with RST: no TIME_WAIT left behind
_READY_CAP = 1024  # events taken from epoll per call
EINPROGRESS = errno.EINPROGRESS
ECONNREFUSED = errno.ECONNREFUSED
CLOSED = PortState.CLOSED
monotonic = time.monotonic
_Found = tuple[str, int, PortState, str, str | None, float | None]


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


def raise_fd_limit() -> int:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit; return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1 << 20)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as exc:  # a container may forbid it; use what we have
            log.debug("cannot raise RLIMIT_NOFILE from %d to %d: %s", soft, hard, exc)
    return soft


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


class RateLimiter:
    """A token bucket: at most ``rate`` starts per second, bursts of a few milliseconds."""

    def __init__(self, rate: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self._clock = clock
        self._burst = 1.0 if rate is None else max(1.0, rate / 100)
        self._tokens = self._burst
        self._last = clock()

    def take(self, wanted: int) -> int:
        """Return how many of ``wanted`` starts are allowed now (and spend them)."""
        if self.rate is None:
            return wanted
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        allowed = min(wanted, int(self._tokens))
        self._tokens -= allowed
        return allowed

    def wait_time(self) -> float:
        """Seconds until the next start is allowed (0 when one is allowed now)."""
        if self.rate is None or self._tokens >= 1:
            return 0.0
        return (1 - self._tokens) / self.rate


class _Congestion:
    """Additive increase, multiplicative decrease of the window (RFC 5681 section 3.1)."""

    def __init__(self, ceiling: int) -> None:
        self.ceiling = ceiling
        self.window = float(ceiling)
        self._last_cut = -1e9
        self.cuts = 0

    def on_answer(self) -> None:
        if self.window < self.ceiling:
            self.window = min(self.ceiling, self.window + 1)

    def on_answers(self, count: int) -> None:
        """:meth:`on_answer` ``count`` times."""
        if self.window < self.ceiling:
            self.window = min(self.ceiling, self.window + count)

    def on_loss(self, now: float, period: float, answered_since: bool) -> None:
        # Only a loss among answers is congestion; a host that answers nothing is
        # filtered or down, and slowing down would only make that scan slower.
        if answered_since and now - self._last_cut >= period:
            self.window = max(MIN_WINDOW, self.window / 2)
            self._last_cut = now
            self.cuts += 1
            log.debug("loss among answers: window now %d", int(self.window))

    @property
    def size(self) -> int:
        return int(self.window)


@dataclass(slots=True)
class _Probe:
    sock: socket.socket
    target: Target
    port: int
    attempt: int
    started: float
    deadline: float
    answers_at_start: int


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


async def run_socket_engine(
    probes: Iterator[tuple[Target, int]],
    kind: ProbeKind,
    options: EngineOptions,
    names: Sequence[str | None] | None = None,
) -> AsyncGenerator[list[PortResult], None]:
    """Probe every (target, port) of ``probes``; yield results in batches as they come.

    Only as many probes are taken from ``probes`` as fit the window, so memory stays
    bounded whatever the size of the scan. Closing the generator (``aclose``, a break,
    Ctrl-C) closes every socket still in flight. ``names[port]`` is each result's
    ``expected`` service name.

    TCP sockets are reused: on Linux a second ``connect`` on a non-blocking socket
    whose first attempt has completed returns that attempt's result (``ECONNREFUSED``,
    ``EISCONN``) and, after a refusal, leaves the socket unconnected and ready for the
    next port. On loopback the answer is there before the first ``connect`` returns,
    so a closed port costs two system calls and no socket; elsewhere the second call
    says ``EALREADY`` and the socket waits in the epoll set.
    """
    transport = kind.value
    is_tcp = kind is ProbeKind.TCP_CONNECT
    ceiling = window_size(options.concurrency)
    congestion = _Congestion(ceiling)
    limiter = RateLimiter(options.rate)
    retries = max(0, options.retries)
    base_timeout = max(0.001, options.timeout)
    ep = select.epoll()
    epfd = ep.fileno()
    wait_mask = (select.EPOLLOUT if is_tcp else select.EPOLLIN) | select.EPOLLONESHOT
    inflight: dict[int, _Probe] = {}
    registered: set[int] = set()  # fds known to the epoll set (oneshot: re-armed by MOD)
    spare: dict[int, list[socket.socket]] = {socket.AF_INET: [], socket.AF_INET6: []}
    deadlines: deque[tuple[float, int, _Probe]] = deque()
    again: deque[tuple[Target, int, int]] = deque()  # unanswered probes to send again
    answers = 0
    exhausted = False
    loop = asyncio.get_running_loop()
    # Answers found, until they become PortResults (names known):
    # (host, port, state, reason, hostname, rtt).
    results: list[_Found] = []
    append = results.append
    table = names
    make = result_maker(transport)

    def finish(probe: _Probe, state: PortState, reason: str, now: float) -> None:
        rtt = None if state is PortState.FILTERED else now - probe.started
        append((probe.target.address, probe.port, state, reason, probe.target.hostname, rtt))

    def results_of(found: list[_Found]) -> list[PortResult]:
        if table is None:
            return [make(h, p, s, r, name, None, rtt) for h, p, s, r, name, rtt in found]
        return [make(h, p, s, r, name, table[p], rtt) for h, p, s, r, name, rtt in found]

    def discard(sock: socket.socket) -> None:
        registered.discard(sock.fileno())
        sock.close()

    def unanswered(probe: _Probe, now: float) -> None:
        congestion.on_loss(now, base_timeout, answers > probe.answers_at_start)
        if probe.attempt < retries:
            again.append((probe.target, probe.port, probe.attempt + 1))
        elif is_tcp:
            finish(probe, PortState.FILTERED, "no-response", now)
        else:
            finish(probe, PortState.OPEN_FILTERED, "no-response", now)

    def wait_for(probe: _Probe) -> None:
        fd = probe.sock.fileno()
        if fd in registered:
            ep.modify(fd, wait_mask)
        else:
            ep.register(fd, wait_mask)
            registered.add(fd)
        inflight[fd] = probe
        deadlines.append((probe.deadline, fd, probe))

    def settle_tcp(probe: _Probe, err: int, now: float) -> None:
        """Classify a TCP connect outcome; ``EALREADY`` means still waiting."""
        nonlocal answers
        sock = probe.sock
        if err == errno.ECONNREFUSED:
            answers += 1
            congestion.on_answer()
            spare[probe.target.family].append(sock)  # unconnected again: reuse it
            finish(probe, PortState.CLOSED, "conn-refused", now)
        elif err in (0, errno.EISCONN):
            try:
                self_connect = sock.getsockname() == sock.getpeername()
            except OSError:
                self_connect = False
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ABORT)
            discard(sock)
            answers += 1
            congestion.on_answer()
            if self_connect:
                # Nobody listens: the kernel joined our socket to itself (source port ==
                # destination port on the same address). That is a closed port.
                finish(probe, PortState.CLOSED, "self-connect", now)
            else:
                finish(probe, PortState.OPEN, "syn-ack", now)
        elif err in (errno.EALREADY, errno.EINPROGRESS):
            wait_for(probe)
        else:
            discard(sock)
            if err == errno.ETIMEDOUT:
                unanswered(probe, now)
            elif err in _FILTERED_ERRNOS:
                answers += 1
                finish(probe, PortState.FILTERED, _FILTERED_ERRNOS[err], now)
            else:
                finish(probe, PortState.FILTERED, errno.errorcode.get(err, str(err)).lower(), now)

    def settle_udp(probe: _Probe, err: int, now: float) -> None:
        nonlocal answers
        sock = probe.sock
        if err == 0:
            try:
                sock.recv(1)
            except BlockingIOError:
                wait_for(probe)  # a spurious wake-up: keep waiting
                return
            except OSError as exc:
                err = exc.errno or errno.EIO
            else:
                discard(sock)
                answers += 1
                congestion.on_answer()
                finish(probe, PortState.OPEN, "udp-response", now)
                return
        discard(sock)
        if err == errno.ECONNREFUSED:
            answers += 1
            congestion.on_answer()
            finish(probe, PortState.CLOSED, "port-unreach", now)
        elif err in _FILTERED_ERRNOS:
            answers += 1
            finish(probe, PortState.FILTERED, _FILTERED_ERRNOS[err], now)
        else:
            finish(probe, PortState.FILTERED, errno.errorcode.get(err, str(err)).lower(), now)

    def start(target: Target, port: int, attempt: int, now: float) -> bool:
        """Start one probe; False when the kernel is out of a resource (retry later)."""
        host = target.address
        if ":" in host:
            family = socket.AF_INET6
            address: tuple[str, int] | tuple[str, int, int, int] = (host, port, 0, 0)
        else:
            family = socket.AF_INET
            address = (host, port)
        pool = spare[family]
        try:
            if is_tcp and pool:
                sock = pool.pop()
            else:
                sock = socket.socket(
                    family,
                    (socket.SOCK_STREAM if is_tcp else socket.SOCK_DGRAM) | socket.SOCK_NONBLOCK,
                )
        except OSError as exc:
            if exc.errno in _RESOURCE_ERRNOS:
                return False
            raise
        if is_tcp:
            began = monotonic()
            err = sock.connect_ex(address)
            if err == EINPROGRESS:
                err = sock.connect_ex(address)  # the answer, if it is already here
            if err == ECONNREFUSED:
                # The common case, inlined: refused before connect returned (loopback,
                # or a very near host). The socket is unconnected again: reuse it.
                nonlocal answers
                answers += 1
                if congestion.window < ceiling:
                    congestion.on_answer()
                pool.append(sock)
                append((host, port, CLOSED, "conn-refused", target.hostname, monotonic() - began))
                return True
        else:
            err = sock.connect_ex(address)
        if err in _RESOURCE_ERRNOS:
            discard(sock)
            return False
        probe = _Probe(sock, target, port, attempt, now, now + base_timeout * (2**attempt), answers)
        if is_tcp:
            probe.started = began
            settle_tcp(probe, err, monotonic())
        elif err:
            settle_udp(probe, err, now)
        else:
            try:
                # The request likely for the port first, another one on each re-send.
                name = table[port] if table is not None else None
                sock.send(udp_payload(name, attempt, host))
            except OSError as exc:
                settle_udp(probe, exc.errno or errno.EIO, now)
            else:
                wait_for(probe)
        return True

    def launch(now: float) -> float | None:
        """Start probes while the window and rate allow; return a wait hint for the rate."""
        nonlocal exhausted
        room = congestion.size - len(inflight)
        if room <= 0:
            return None
        allowed = limiter.take(room)
        for _ in range(allowed):
            if again:
                target, port, attempt = again.popleft()
            elif not exhausted:
                try:
                    target, port = next(probes)
                except StopIteration:
                    exhausted = True
                    break
                attempt = 0
            else:
                break
            if not start(target, port, attempt, now):
                # Out of ports or descriptors: put it back, shrink, and let answers drain.
                again.appendleft((target, port, attempt))
                congestion.window = max(MIN_WINDOW, len(inflight) / 2)
                break
            if len(results) >= _READY_CAP:
                break  # hand these over before starting more
        wait = limiter.wait_time()
        return wait if wait > 0 else None

    def drain(now: float) -> None:
        while True:
            ready = ep.poll(0, _READY_CAP)
            for fd, _mask in ready:
                probe = inflight.pop(fd, None)
                if probe is None:
                    continue
                if is_tcp:
                    settle_tcp(
                        probe, probe.sock.connect_ex(_sockaddr(probe.target, probe.port)), now
                    )
                else:
                    err = probe.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    settle_udp(probe, err, now)
            if len(ready) < _READY_CAP:
                return

    def expire(now: float) -> None:
        while deadlines and deadlines[0][0] <= now:
            _deadline, fd, probe = deadlines.popleft()
            if inflight.get(fd) is probe:
                del inflight[fd]
                discard(probe.sock)
                unanswered(probe, now)

    ready_event = asyncio.Event()
    loop.add_reader(epfd, ready_event.set)
    try:
        while True:
            now = time.monotonic()
            drain(now)
            expire(now)
            rate_wait = launch(now)
            done = exhausted and not again and not inflight
            if results:
                found, results = results, []
                append = results.append
                yield results_of(found)
                await asyncio.sleep(0)  # let the loop run signals, progress and the consumer
                continue
            if done:
                return
            # Nothing ready: sleep until an answer, the next deadline or the next token.
            waits = [rate_wait] if rate_wait is not None else []
            if deadlines:
                waits.append(max(0.0, deadlines[0][0] - time.monotonic()))
            if not waits and not inflight and again:
                waits.append(0.01)  # resources were short: give the kernel a moment
            # The epoll descriptor is level-triggered in the loop's selector: if answers
            # are already waiting, the event is set again at once.
            ready_event.clear()
            try:
                async with asyncio.timeout(min(waits) if waits else None):
                    await ready_event.wait()
            except TimeoutError:
                pass
    finally:
        loop.remove_reader(epfd)
        for probe in inflight.values():
            probe.sock.close()
        inflight.clear()
        for pool in spare.values():
            for sock in pool:
                sock.close()
        ep.close()
