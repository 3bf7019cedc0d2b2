"""Split one large scan across processes, so the kernel's work runs on every core.

A TCP probe on a near host is mostly kernel time (socket, SYN, RST, wake-up), spent in
the process that sends it. One Python process keeps one core busy; a sweep of 65,535
ports on a 2-core machine leaves the other idle. For large scans the engine forks
processes (Linux ``fork``: no new interpreter to start), gives each every n-th probe,
and merges what they find into the caller's stream. Each runs its own engine, window,
retries and back-off under its share of the ceilings (``EngineOptions.share``);
results come back over a pipe as compact tuples and become :class:`PortResult`
objects in the caller. ("Workers" are a Dask cluster's, see ``_cluster``; these are
the scan's *processes*.)

A forked process keeps none of the caller's descriptors but its pipe: the caller's
event loop (its epoll set, its sockets) is the caller's alone.

Ctrl-C and early closing kill the processes; one that fails reports its error,
which is raised in the caller.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Iterator, Sequence
from typing import Any

from portkit._errors import PortkitError
from portkit.results import Batches, PortState, ResultBatch
from portkit.scan._engine import EngineOptions
from portkit.scan._fork import Messages, fork_process, send
from portkit.scan._names import result_maker
from portkit.scan._targets import Target

__all__ = [
    "MIN_PROBES_PER_PROCESS",
    "QUEUED_MESSAGES",
    "Cores",
    "Slots",
    "local_cores",
    "process_count",
    "sharded",
    "share_ceilings",
]

MIN_PROBES_PER_PROCESS = 6000  # below this the fork costs more than it saves
# Messages (batches of results) from the forked processes held here at most; past
# that their pipes are not read until the caller has taken some (bounded memory: a /16
# x --top 100 scan reached 484 MB when they were read as fast as they came).
QUEUED_MESSAGES = 8
_READ_SIZE = 1 << 16  # one pipe's worth (Linux's default pipe buffer)
_STATES = {s.value: s for s in PortState}

Engine = Callable[[Iterator[tuple[Target, int]]], Batches]
Row = tuple[str, str | None, int, str, str, float | None]
Counted = tuple[str, str, str, str, int]  # a CountKey with its state's value, and the count
Message = tuple[list[Row], list[Counted]]


def process_count(probes: int, wanted: int | None = None) -> int:
    """How many processes to use for ``probes`` probes (``wanted`` caps it; 1: no fork).

    Every core this process may run on, at most one process per
    :data:`MIN_PROBES_PER_PROCESS` probes. Not only the cores idle at the moment:
    on a shared machine a second process still gets the scan its own share of the
    CPU, and the fork costs next to nothing beside it (over a veth link, a ``-p-``
    sweep in two processes took 0.78 s against 1.13 s in one, with 0.80 s and 0.79 s
    of CPU, while other work kept about one core busy). ``--processes 1`` keeps a
    scan in one process.
    """
    if wanted is not None:
        return max(1, wanted)
    if sys.platform != "linux":
        return 1
    cores = len(os.sched_getaffinity(0))
    return max(1, min(cores, probes // MIN_PROBES_PER_PROCESS))


def _every(
    probes: Iterator[tuple[Target, int]], index: int, count: int
) -> Iterator[tuple[Target, int]]:
    return itertools.islice(probes, index, None, count)


def _work(
    engine: Engine, probes: Iterator[tuple[Target, int]]
) -> Callable[[int], Coroutine[Any, Any, None]]:
    """What a forked process runs: its share of the probes, rows sent as they come."""

    async def run(write_fd: int) -> None:
        async for batch in engine(probes):
            rows: list[Row] = [
                (r.host, r.hostname, r.port, r.state.value, r.reason, r.rtt) for r in batch.results
            ]
            counts = [(h, t, s.value, r, n) for (h, t, s, r), n in batch.counts.items()]
            send(write_fd, "rows", (rows, counts))

    return run


async def sharded(
    engine: Engine,
    probes: Iterator[tuple[Target, int]],
    processes: int,
    *,
    transport: str,
    names: Sequence[str | None] | None,
    own_engine: Engine | None = None,
) -> Batches:
    """Run ``engine`` over ``probes`` in ``processes`` processes (this one included).

    ``own_engine`` (default: ``engine``) is the one this process runs; the forked
    processes' results are named here with ``names``.
    """

    import asyncio  # here: a scan in one process runs without it (_loopless)

    make = result_maker(transport)
    table = names

    def batch_of(message: tuple[list[Row], list[Counted]]) -> ResultBatch:
        rows, counted = message
        results = [
            make(host, port, _STATES[state], reason, hostname,
                 None if table is None else table[port], rtt)
            for host, hostname, port, state, reason, rtt in rows
        ]  # fmt: skip
        counts = {(h, t, _STATES[s], r): n for h, t, s, r, n in counted}
        return ResultBatch(results, counts)

    children: list[tuple[int, int]] = []  # (pid, read fd)
    try:
        # One by one: those already forked are in the list if a later fork fails.
        children.extend(
            fork_process(_work(engine, _every(probes, index, processes)))
            for index in range(1, processes)
        )
        own = (own_engine or engine)(_every(probes, 0, processes))
        queue: asyncio.Queue[Message | BaseException | None] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        buffers = {fd: Messages() for _pid, fd in children}
        open_fds = set(buffers)
        paused = False

        def readable(fd: int) -> None:
            nonlocal paused
            while queue.qsize() < QUEUED_MESSAGES:
                try:
                    chunk = os.read(fd, _READ_SIZE)
                except BlockingIOError:
                    return
                if not chunk:
                    loop.remove_reader(fd)
                    open_fds.discard(fd)
                    queue.put_nowait(None)
                    return
                try:
                    for _kind, message in buffers[fd].feed(chunk):
                        queue.put_nowait(message)
                except PortkitError as exc:
                    queue.put_nowait(exc)
            # Enough waits here: leave the rest in the pipes, so a process that sends
            # faster than this one takes results blocks on its pipe, instead of its
            # results piling up in this process's memory.
            for open_fd in open_fds:
                loop.remove_reader(open_fd)
            paused = True

        def resume() -> None:
            nonlocal paused
            if paused and queue.qsize() < QUEUED_MESSAGES:
                for open_fd in open_fds:
                    loop.add_reader(open_fd, readable, open_fd)
                paused = False

        for _pid, fd in children:
            loop.add_reader(fd, readable, fd)
        async for batch in own:
            yield batch
            while not queue.empty():
                item = queue.get_nowait()
                resume()
                if isinstance(item, BaseException):
                    raise item
                if item is not None:
                    yield batch_of(item)
        while open_fds or not queue.empty():
            resume()
            item = await queue.get()
            if isinstance(item, BaseException):
                raise item
            if item is not None:
                yield batch_of(item)
    finally:
        for pid, fd in children:
            with contextlib.suppress(RuntimeError):
                asyncio.get_running_loop().remove_reader(fd)
            os.close(fd)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)  # done already, or told to stop now
            os.waitpid(pid, 0)  # noqa: ASYNC222 (killed just above: returns at once)


def share_ceilings(options: EngineOptions, slots: int) -> EngineOptions:
    """Each of ``slots``' options when they run one scan together: ``options.share``.

    The one split of ``--rate`` and ``--concurrency``, for every executor: each slot
    gets an equal share, rounded down, so that together they never exceed them.
    """
    return options.share(slots)


class Slots:
    """What every executor shares: ``slots`` and the one split of the ceilings."""

    slots: int = 1
    machines: int = 1

    def share(self, options: EngineOptions) -> EngineOptions:
        return share_ceilings(options, self.slots)


class Cores(Slots):
    """One scan split across ``slots`` processes of this machine, this one among them.

    :meth:`stream` gives each process every ``slots``-th probe (``_shard.sharded``),
    runs its engine there under its share of the ceilings (:meth:`share`) and streams
    the results back as they come; with one slot nothing is forked. (The executor
    that also runs whole shards this way is ``_executors.Sharded``.)
    """

    def __init__(self, slots: int = 1) -> None:
        self.slots = max(1, slots)

    def stream(
        self,
        engine: Engine,
        probes: Iterator[tuple[Target, int]],
        *,
        transport: str,
        names: Sequence[str | None] | None,
        own_engine: Engine | None = None,
    ) -> Batches:
        """Run ``engine`` over ``probes`` on the slots; results as they come.

        ``own_engine`` (default ``engine``) is this process's; the forked processes'
        results are named here with ``names``.
        """
        if self.slots == 1:
            return (own_engine or engine)(probes)
        return sharded(
            engine, probes, self.slots, transport=transport, names=names, own_engine=own_engine
        )


def local_cores(probes: int, wanted: int | None = None) -> Cores:
    """The cores of this machine for a scan of ``probes`` probes (``wanted`` processes,
    or as many as :func:`process_count` judges worth forking)."""
    return Cores(process_count(probes, wanted))
