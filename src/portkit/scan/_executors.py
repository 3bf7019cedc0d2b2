"""Executors: where a scan's work runs (this process, forked processes, Dask).

One interface (:class:`Executor`): ``start``, ``submit(task, attempt)`` returning a
future of (shard index, sorted results), ``close``, ``slots`` (how many run at once),
``machines`` and ``share``: the scan's ceilings (``--rate``, ``--concurrency``) split
across the slots, the one place they are split (every executor's ``share`` is
:func:`share_ceilings`, ``EngineOptions.share``'s even split).

- :class:`InProcess`: one shard at a time in this process (``--resume`` alone); a
  shard's own scan may still fork as a local scan does (``--processes``).
- :class:`Sharded`: one scan split across ``slots`` processes of this machine, this
  one among them: each runs every n-th probe and streams its results back as they
  come (``stream``, from ``_shard.Cores``, what every local TCP scan runs on; one
  slot: no fork); its ``submit`` runs a shard that way.
- :class:`Forked`: ``--resume --processes N``: shards in N forked processes here, each
  shard's results back whole.
- :class:`Dask`: ``--workers N`` (a local Dask cluster) or ``--cluster ADDRESS``.

Every forked process is made by :func:`~portkit.scan._fork.fork_process` (none of
this process's descriptors, a fresh loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import signal
from collections.abc import Sequence
from typing import Any, Protocol

from portkit._errors import NetworkError, PortkitError, UsageError
from portkit.results import PortResult
from portkit.scan._engine import EngineOptions
from portkit.scan._fork import Messages, fork_process, send
from portkit.scan._packed import PackedResults, pack, unpack
from portkit.scan._scan import scan_batches
from portkit.scan._shard import Cores, Slots, process_count, share_ceilings
from portkit.scan._shards import ShardTask, result_key

__all__ = [
    "Dask",
    "Executor",
    "Forked",
    "InProcess",
    "PlanOnly",
    "Sharded",
    "local_executor",
    "make_executor",
    "run_shard",
    "run_shard_packed",
    "run_shards",
    "run_shards_packed",
    "share_ceilings",
]

log = logging.getLogger("portkit.scan.cluster")

WORKER_WAIT = 30.0  # seconds to wait for a first worker on an existing cluster


async def _run_shard_async(task: ShardTask) -> list[PortResult]:

    results: list[PortResult] = []
    if not task.shard.targets:  # every host of it excluded
        return results
    level: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
    if task.detect:
        from portkit.scan._identify import detect_level

        level = detect_level(task.level)  # the scan's tasks start from this context
    with level:
        async with contextlib.aclosing(scan_batches(task.plan(), detect=task.detect)) as batches:
            async for batch in batches:
                results.extend(batch.results)
    results.sort(key=result_key)
    return results


def run_shard(task: ShardTask) -> tuple[int, list[PortResult]]:
    """Run one shard to completion on this machine; return its index and sorted results.

    This is the function Dask workers call (in a worker thread, with its own loop).
    """
    return task.shard.index, asyncio.run(_run_shard_async(task))


def run_shards(tasks: Sequence[ShardTask]) -> list[tuple[int, list[PortResult]]]:
    """Run shards one after another (shards of one host block, sent together)."""

    async def run_all() -> list[tuple[int, list[PortResult]]]:
        return [(task.shard.index, await _run_shard_async(task)) for task in tasks]

    return asyncio.run(run_all())


def run_shard_packed(task: ShardTask) -> tuple[int, PackedResults]:
    """:func:`run_shard`, its results packed to travel (what Dask workers call)."""
    index, results = run_shard(task)
    return index, pack(results)


def run_shards_packed(tasks: Sequence[ShardTask]) -> list[tuple[int, PackedResults]]:
    """:func:`run_shards`, each shard's results packed to travel."""
    return [(index, pack(results)) for index, results in run_shards(tasks)]


def _unpacked(value: Any) -> Any:
    if isinstance(value, list):
        return [(index, unpack(packed)) for index, packed in value]
    index, packed = value
    return index, unpack(packed)


class Executor(Protocol):
    """Where shards run: ``slots`` at a time; each comes back whole, as a future.

    ``machines``: how many workers (each its own ceiling under ``--rate-per-worker``).
    """

    slots: int
    machines: int

    def share(self, options: EngineOptions) -> EngineOptions:
        """What each slot runs with: :func:`share_ceilings` over ``slots``."""
        ...

    async def start(self) -> None: ...

    def submit(
        self, task: ShardTask, attempt: int
    ) -> asyncio.Future[tuple[int, list[PortResult]]]: ...

    async def close(self) -> None: ...


class InProcess(Slots):
    """Shards in this process (``--resume`` without a cluster: one at a time)."""

    machines = 1

    def __init__(self, slots: int = 1) -> None:
        self.slots = slots

    async def start(self) -> None:
        return None

    def submit(self, task: ShardTask, attempt: int) -> asyncio.Future[tuple[int, list[PortResult]]]:
        async def run() -> tuple[int, list[PortResult]]:
            return task.shard.index, await _run_shard_async(task)

        return asyncio.ensure_future(run())

    async def close(self) -> None:
        return None


class PlanOnly(InProcess):
    """``--plan-only``: slots counted as a cluster of ``slots`` workers would have; a
    shard submitted here is a bug (the plan is only accounted)."""

    def __init__(self, slots: int = 1) -> None:
        super().__init__(slots)
        self.machines = slots

    def submit(self, task: ShardTask, attempt: int) -> asyncio.Future[tuple[int, list[PortResult]]]:
        raise RuntimeError("a plan-only scan sends nothing")  # pragma: no cover (a bug)


class Sharded(Cores, InProcess):
    """One scan split across ``slots`` processes of this machine, this one among them
    (:class:`~portkit.scan._shard.Cores`, what every local TCP scan runs on); a shard
    submitted here runs in this process as a local scan does, on these cores."""


def local_executor(probes: int, wanted: int | None = None) -> Sharded:
    """:func:`~portkit.scan._shard.local_cores` as an executor (shards can be submitted)."""
    return Sharded(process_count(probes, wanted))


class Forked(Slots):
    """Shards in forked processes of this machine, ``slots`` at a time (``--processes``).

    Each shard runs in a process of its own (:func:`~portkit.scan._fork.fork_process`:
    none of this process's descriptors, a fresh loop) and sends its sorted results
    back whole over a pipe.
    """

    machines = 1  # all on this machine

    def __init__(self, slots: int) -> None:
        self.slots = max(1, slots)
        self._children: set[int] = set()

    async def start(self) -> None:
        return None

    def submit(self, task: ShardTask, attempt: int) -> asyncio.Future[tuple[int, list[PortResult]]]:
        async def work(write_fd: int) -> None:
            send(write_fd, "shard", await _run_shard_async(task))

        pid, read_fd = fork_process(work)
        self._children.add(pid)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[int, list[PortResult]]] = loop.create_future()
        messages = Messages()
        results: list[PortResult] | None = None

        def finish(error: BaseException | None) -> None:
            loop.remove_reader(read_fd)
            os.close(read_fd)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)  # it has closed its pipe: it is exiting
            self._children.discard(pid)
            if future.done():
                return
            if error is not None:
                future.set_exception(error)
            elif results is None:
                future.set_exception(
                    PortkitError(f"scan process for shard {task.shard.index} ended without results")
                )
            else:
                future.set_result((task.shard.index, results))

        def readable() -> None:
            nonlocal results
            while True:
                try:
                    chunk = os.read(read_fd, 1 << 20)
                except BlockingIOError:
                    return
                if not chunk:
                    finish(None)
                    return
                try:
                    for _kind, payload in messages.feed(chunk):
                        results = payload
                except PortkitError as exc:
                    finish(exc)
                    return

        loop.add_reader(read_fd, readable)
        return future

    async def close(self) -> None:
        for pid in list(self._children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)  # a shard still running: the scan is over
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)  # noqa: ASYNC222 (killed just above: returns at once)
        self._children.clear()


class Dask(Slots):
    """Shards on Dask workers: a local cluster we start, or a scheduler we are given."""

    def __init__(
        self, *, address: str | None, workers: int | None, timeout: float, quiet: bool
    ) -> None:
        self._address = address
        self._workers = workers
        self._timeout = timeout
        self._quiet = quiet
        self._cluster: Any = None
        self._client: Any = None
        self._token = ""
        self.slots = 1
        self.machines = 1
        self.ahead = 0  # shards queued on the cluster beyond its slots (set by start)

    async def start(self) -> None:
        try:
            # Typed loosely on purpose: distributed's own annotations are partial.
            distributed: Any = importlib.import_module("distributed")
        except ImportError:
            raise UsageError(
                "cluster scans need Dask distributed: pip install 'portkit[cluster]'"
            ) from None
        import secrets

        if self._quiet:
            _silence_dask()
        self._token = secrets.token_hex(4)
        if self._address is None:
            self._cluster = await distributed.LocalCluster(
                n_workers=self._workers,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                scheduler_port=0,
                dashboard_address=None,
                worker_dashboard_address=None,
                # The scheduler serves a few HTTP routes even without the dashboard, by
                # default on port 8787: a free port of 127.0.0.1 instead, no dashboard.
                scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
                silence_logs=logging.ERROR,
                asynchronous=True,
            )
            address = self._cluster.scheduler_address
        else:
            address = self._address
        try:
            self._client = await distributed.Client(
                address, asynchronous=True, timeout=self._timeout, set_as_default=False
            )
        except (OSError, TimeoutError) as exc:
            await self.close()
            raise NetworkError(f"cannot reach the dask scheduler at {address!r}: {exc}") from None
        try:
            await self._client.wait_for_workers(1, timeout=WORKER_WAIT)
        except TimeoutError:
            await self.close()
            raise NetworkError(
                f"no worker joined the dask scheduler at {address!r} within {WORKER_WAIT:g} s"
            ) from None
        # An asynchronous client's scheduler_info() is a cache without the workers.
        info = await self._client.scheduler.identity(n_workers=-1)
        self.slots = max(1, sum(int(w.get("nthreads", 1)) for w in info["workers"].values()))
        # Each worker is taken for a machine of its own (its own uplink and ceiling):
        # --rate-per-worker is per worker process, whatever its threads.
        self.machines = max(1, len(info["workers"]))
        # A worker's next shards wait in the scheduler's queue: one finishing starts the
        # next without a round trip to the client, and the client's round trips overlap.
        self.ahead = 3 * self.slots

    def submit(self, task: ShardTask, attempt: int) -> asyncio.Future[tuple[int, list[PortResult]]]:
        key = f"portkit-shard-{self._token}-{task.shard.index}-{attempt}"
        future = self._client.submit(run_shard_packed, task, key=key, pure=False)
        return self._result(future, task)

    def submit_batch(
        self, tasks: Sequence[ShardTask], attempt: int
    ) -> asyncio.Future[list[tuple[int, list[PortResult]]]]:
        """Shards run one after another by one worker, as one Dask task."""
        key = f"portkit-shards-{self._token}-{tasks[0].shard.index}-{len(tasks)}-{attempt}"
        future = self._client.submit(run_shards_packed, tasks, key=key, pure=False)
        return self._result(future, tasks[0])

    def _result(self, future: Any, task: ShardTask) -> asyncio.Future[Any]:
        async def result() -> Any:
            try:
                value = await future
            except asyncio.CancelledError:
                this = asyncio.current_task()
                if this is not None and this.cancelling():
                    raise  # we were cancelled (Ctrl-C, or the scan is being closed)
                raise NetworkError(
                    f"the dask scheduler dropped shard {task.shard.index} (scheduler lost?)"
                ) from None
            return _unpacked(value)

        return asyncio.ensure_future(result())

    async def close(self) -> None:
        client, self._client = self._client, None
        cluster, self._cluster = self._cluster, None
        if client is not None:
            await client.close()
        if cluster is not None:
            await cluster.close()


def _silence_dask() -> None:
    # Dask logs its own tracebacks when a connection drops, on loggers configured one
    # by one; the scan reports what that means in one line instead.
    names = [n for n in logging.root.manager.loggerDict if n.split(".")[0] == "distributed"]
    for name in ["distributed", *names]:
        logging.getLogger(name).setLevel(logging.CRITICAL)


def make_executor(
    *,
    address: str | None,
    workers: int | None,
    processes: int | None,
    connect_timeout: float,
    quiet: bool,
) -> Executor:
    """The executor asked for: a Dask cluster (``address`` or ``workers``), forked
    processes (``processes`` above 1), or this process."""
    if address is not None or workers is not None:
        return Dask(address=address, workers=workers, timeout=connect_timeout, quiet=quiet)
    if processes is not None and processes > 1:
        return Forked(processes)
    return InProcess()
