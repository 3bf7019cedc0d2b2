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

import asyncio
import contextlib
import itertools
import os
import signal
import struct
import sys
from collections.abc import Callable, Iterator, Sequence

from portkit._errors import PortkitError
from portkit.scan._fork import close_inherited
from portkit.scan._model import Batches, PortResult, PortState, ResultBatch
from portkit.scan._names import BackgroundNames, result_maker
from portkit.scan._targets import Target

__all__ = ["MIN_PROBES_PER_PROCESS", "process_count", "sharded"]

MIN_PROBES_PER_PROCESS = 6000  # below this the fork costs more than it saves
_HEADER = struct.Struct("!I")
_STATES = {s.value: s for s in PortState}

Engine = Callable[[Iterator[tuple[Target, int]]], Batches]
Row = tuple[str, str | None, int, str, str, float | None]


def process_count(probes: int, wanted: int | None = None) -> int:
    """How many processes to use for ``probes`` probes (``wanted`` caps it; 1: no fork)."""
    if wanted is not None:
        return max(1, wanted)
    if sys.platform != "linux":
        return 1
    # Only cores that are idle help: on a busy machine the extra process just competes
    # with this one (measured: slower under a load above the core count).
    cores = len(os.sched_getaffinity(0))
    idle = cores - _busy_elsewhere()
    return max(1, min(idle, probes // MIN_PROBES_PER_PROCESS))


def _busy_elsewhere() -> int:
    """How many other tasks want a core right now.

    The kernel's count of runnable tasks at this moment (proc(5): the fourth field of
    /proc/loadavg), less this one. Not the one-minute load average: that still
    counts a busy minute that has just ended (a previous scan, say), and then no core
    ever looks idle to back-to-back scans.
    """
    try:
        with open("/proc/loadavg", encoding="ascii") as stat:
            runnable = int(stat.read().split()[3].split("/")[0])
    except (OSError, IndexError, ValueError):
        return round(os.getloadavg()[0])
    return max(0, runnable - 1)


def _every(
    probes: Iterator[tuple[Target, int]], index: int, count: int
) -> Iterator[tuple[Target, int]]:
    return itertools.islice(probes, index, None, count)


def _child(engine: Engine, probes: Iterator[tuple[Target, int]], write_fd: int) -> None:
    """The forked process's whole life; never returns (``os._exit``)."""
    import pickle

    code = 0
    try:
        close_inherited(write_fd)  # the parent's loop, sockets and pipes are not ours
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
        signal.set_wakeup_fd(-1)
        asyncio.events._set_running_loop(None)  # the parent's loop is not ours
        loop = asyncio.new_event_loop()

        async def run() -> None:
            async for batch in engine(probes):
                rows: list[Row] = [
                    (r.host, r.hostname, r.port, r.state.value, r.reason, r.rtt)
                    for r in batch.results
                ]
                data = pickle.dumps(("rows", rows), protocol=pickle.HIGHEST_PROTOCOL)
                _write_all(write_fd, _HEADER.pack(len(data)) + data)

        loop.run_until_complete(run())
    except BaseException as exc:  # report it to the parent, whatever it is
        message = str(exc) if isinstance(exc, PortkitError) else f"{type(exc).__name__}: {exc}"
        data = pickle.dumps(("error", message))
        with contextlib.suppress(OSError):
            _write_all(write_fd, _HEADER.pack(len(data)) + data)
        code = 1
    finally:
        os._exit(code)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


async def sharded(
    engine: Engine,
    probes: Iterator[tuple[Target, int]],
    processes: int,
    *,
    transport: str,
    names: Sequence[str | None] | BackgroundNames | None,
    own_engine: Engine | None = None,
) -> Batches:
    """Run ``engine`` over ``probes`` in ``processes`` processes (this one included).

    ``own_engine`` (default: ``engine``) is the one this process runs; the forked
    processes' results are named here with ``names`` (a table, or one on its way).
    """
    import pickle

    make = result_maker(transport)
    table: Sequence[str | None] | None = None

    def results_of(rows: list[Row]) -> list[PortResult]:
        nonlocal table
        if table is None and names is not None:
            table = names.wait() if isinstance(names, BackgroundNames) else names
        return [
            make(host, port, _STATES[state], reason, hostname,
                 None if table is None else table[port], rtt)
            for host, hostname, port, state, reason, rtt in rows
        ]  # fmt: skip

    children: list[tuple[int, int]] = []  # (pid, read fd)
    try:
        for index in range(1, processes):
            read_fd, write_fd = os.pipe()
            pid = os.fork()
            if pid == 0:  # pragma: no cover - runs in the forked process
                os.close(read_fd)
                _child(engine, _every(probes, index, processes), write_fd)
            os.close(write_fd)
            os.set_blocking(read_fd, False)
            children.append((pid, read_fd))
        own = (own_engine or engine)(_every(probes, 0, processes))
        queue: asyncio.Queue[list[Row] | BaseException | None] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        buffers = {fd: bytearray() for _pid, fd in children}
        open_fds = set(buffers)

        def readable(fd: int) -> None:
            buffer = buffers[fd]
            while True:
                try:
                    chunk = os.read(fd, 1 << 20)
                except BlockingIOError:
                    break
                if not chunk:
                    loop.remove_reader(fd)
                    open_fds.discard(fd)
                    queue.put_nowait(None)
                    break
                buffer += chunk
            while len(buffer) >= _HEADER.size:
                (size,) = _HEADER.unpack_from(buffer)
                if len(buffer) < _HEADER.size + size:
                    break
                kind, payload = pickle.loads(buffer[_HEADER.size : _HEADER.size + size])
                del buffer[: _HEADER.size + size]
                if kind == "error":
                    queue.put_nowait(PortkitError(f"scan process failed: {payload}"))
                    continue
                queue.put_nowait(payload)

        for _pid, fd in children:
            loop.add_reader(fd, readable, fd)
        async for batch in own:
            yield batch
            while not queue.empty():
                item = queue.get_nowait()
                if isinstance(item, BaseException):
                    raise item
                if item is not None:
                    yield ResultBatch(results_of(item))
        while open_fds or not queue.empty():
            item = await queue.get()
            if isinstance(item, BaseException):
                raise item
            if item is not None:
                yield ResultBatch(results_of(item))
    finally:
        for pid, fd in children:
            with contextlib.suppress(RuntimeError):
                asyncio.get_running_loop().remove_reader(fd)
            os.close(fd)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)  # done already, or told to stop now
            os.waitpid(pid, 0)  # noqa: ASYNC222 (killed just above: returns at once)
