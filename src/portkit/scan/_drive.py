"""The one loop every scan engine runs: a transport moves bytes, the scheduler decides.

A :class:`Transport` knows how to send a probe and read an answer (TCP connect, UDP,
raw SYN over IPv4 and IPv6); the :class:`~portkit.scan._schedule.ProbeScheduler`
knows which probe to send when, and when to give up on one. :func:`drive` turns the
crank::

    read answers -> expire deadlines -> send what the scheduler allows
        -> hand over finished rows -> sleep until
           an answer, the next deadline or the next token of the rate

Answers are read before deadlines are checked, with the clock read before the read,
so a slow consumer or a busy machine can delay a result but never turn an answered
probe into a timeout.

The sleep is asyncio's (a reader on each descriptor and a timer) when an event loop
runs, and one ``poll`` wait (:class:`~portkit.scan._loopless.Wait`) under
:func:`~portkit.scan._loopless.run_loopless`, which a scan with nothing else to do
runs under to start without asyncio.
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Sequence
from itertools import repeat
from operator import attrgetter, itemgetter
from typing import Protocol, TypeVar

from portkit.results import Batches, CountKey, PortResult, ResultBatch
from portkit.scan._loopless import Wait, running_loop
from portkit.scan._names import make_results
from portkit.scan._schedule import ProbeScheduler, Row

__all__ = ["READY_CAP", "Transport", "drive", "rows_to_results"]

READY_CAP = 1024  # rows gathered before they are handed over

K = TypeVar("K", bound=Hashable)
_ADDRESS = attrgetter("address")
_HOSTNAME = attrgetter("hostname")
_TARGETS, _PORTS, _STATES, _REASONS, _RTTS = (itemgetter(i) for i in range(5))


class Transport(Protocol[K]):
    """What an engine does with packets; everything else is the scheduler's."""

    @property
    def transport(self) -> str:
        """The results' transport: ``"tcp"`` or ``"udp"``."""
        ...

    def descriptors(self) -> Sequence[int]:
        """Descriptors whose readiness means there are answers (or reports) to read."""
        ...

    def receive(self, now: float) -> None:
        """Read what has arrived; tell the scheduler (``answer``, ``drop`` ...)."""
        ...

    def expired(self, keys: list[K]) -> None:
        """The scheduler gave up waiting on ``keys``: release what they hold."""
        ...

    def launch(self, now: float, most: int | None) -> None:
        """Send what the scheduler allows (``take``), at most ``most`` probes."""
        ...

    def take_counts(self) -> dict[CountKey, int] | None:
        """Ports only counted since the last call (None: this transport never counts)."""
        ...

    def close(self) -> None:
        """Release everything (also when the scan is abandoned half way)."""
        ...


def rows_to_results(
    transport: str, rows: list[Row], names: Sequence[str | None] | None
) -> list[PortResult]:
    """The scheduler's rows as :class:`PortResult` objects, made column by column."""
    if not rows:
        return []
    targets = list(map(_TARGETS, rows))
    ports = list(map(_PORTS, rows))
    return make_results(
        transport,
        map(_ADDRESS, targets),
        ports,
        map(_STATES, rows),
        map(_REASONS, rows),
        map(_HOSTNAME, targets),
        repeat(None) if names is None else map(names.__getitem__, ports),
        map(_RTTS, rows),
    )


async def drive(
    transport: Transport[K],
    scheduler: ProbeScheduler[K],
    names: Sequence[str | None] | None = None,
) -> Batches:
    """Run ``transport`` under ``scheduler`` until every probe is finished; yield results.

    ``names[port]`` is each result's ``expected`` service name; counted ports
    (transports that count) come in the batches' ``counts``. Closing the generator
    (``aclose``, a break, Ctrl-C) closes the transport.
    """
    loop = running_loop()
    fds = list(transport.descriptors())
    kind = transport.transport
    counting = transport.take_counts() is not None
    counts: dict[CountKey, int] = {}
    monotonic = time.monotonic
    if loop is not None:
        import asyncio

        ready = asyncio.Event()
    try:
        if loop is not None:
            for fd in fds:
                loop.add_reader(fd, ready.set)
        while True:
            now = monotonic()
            transport.receive(now)
            expired = scheduler.expire(now)
            if expired:
                transport.expired(expired)
            transport.launch(now, max(0, READY_CAP - len(scheduler.rows)))
            if counting:
                more = transport.take_counts()
                if more:
                    for key, count in more.items():
                        counts[key] = counts.get(key, 0) + count
            done = scheduler.done
            if scheduler.rows or counts:
                results = rows_to_results(kind, scheduler.take_rows(), names)
                counted, counts = counts, {}
                yield ResultBatch(results, counted)
                if loop is not None:
                    await asyncio.sleep(0)  # let the loop run signals, progress and the consumer
                continue
            if done:
                return
            # Nothing to hand over: sleep until an answer, a deadline or a token.
            wake = scheduler.wake_at(now)
            if loop is None:
                await Wait(fds, None if wake is None else wake - monotonic())
                continue
            # A timer sets the same event as the descriptors do. (Not asyncio.timeout:
            # a Ctrl-C that lands just before it, while its delay is 0, came out as
            # its TimeoutError, and the scan went on; an event cannot eat a cancel.)
            ready.clear()
            timer = None if wake is None else loop.call_later(wake - monotonic(), ready.set)
            try:
                await ready.wait()
            finally:
                if timer is not None:
                    timer.cancel()
    finally:
        if loop is not None:
            for fd in fds:
                loop.remove_reader(fd)
        transport.close()
