"""Cluster scans: shards run on Dask distributed workers, results streamed back in order.

``portkit scan ... --workers N`` starts a local Dask cluster of N worker processes
(scheduler on 127.0.0.1, no dashboard); ``--cluster tcp://HOST:PORT`` uses a running
scheduler whose workers have portkit installed (``pip install 'portkit[cluster]'``).
``--resume STATE`` records each finished shard in STATE and, when STATE already holds
records of the same scan, runs only the shards still missing; without a cluster it
runs the shards in this process.

How it behaves:

- each shard runs the ordinary engine (:func:`portkit.scan.scan_batches`, with
  detection when asked) on one worker and comes back whole; the client hands shards
  to the report in shard order with results sorted within each, so the output is the
  same run to run, resumed or not, with a single-machine scan's hosts and ports; a
  batch says which hosts it completes (``ResultBatch.done``: its shard was the host
  block's last), so reports write them then and memory stays bounded;
- small shards go to a worker several to a task (those of one host block, and of
  other free host blocks while the plan has shards enough for every slot), and more
  are queued on the cluster than it has slots: the round trip, most of a shard's
  fixed cost, is paid less often and overlapped;
- ``--rate`` and ``--concurrency`` are global ceilings, split evenly among the
  worker slots; a host block is never in two running shards at once, so a host gets
  at most one slot's share at any moment;
- a worker that dies mid-shard loses nothing: the scheduler runs the shard again
  elsewhere (and after ``distributed.scheduler.allowed-failures`` deaths the client
  submits it again, twice at most), and a shard counts once, by its index, however
  often it ran.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import re
import resource
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from portkit._errors import NetworkError, PortkitError, UsageError
from portkit.results import Batches, PortResult, ResultBatch
from portkit.scan._engine import EngineOptions
from portkit.scan._executors import Executor, InProcess, PlanOnly, make_executor, run_shard
from portkit.scan._scan import ScanPlan
from portkit.scan._shards import (
    DEFAULT_SHARD_PROBES,
    Layout,
    Order,
    Shard,
    ShardJournal,
    ShardTask,
    choose_layout,
    make_shards,
    scan_fingerprint,
)
from portkit.scan._targets import TargetTable

__all__ = [
    "ClusterOptions",
    "ClusterScan",
    "cluster_batches",
    "run_shard",
]

log = logging.getLogger("portkit.scan.cluster")

CONNECT_TIMEOUT = 10.0  # seconds to reach a scheduler
RESUBMITS = 2  # extra submissions of a shard whose workers kept dying
_ADDRESS = re.compile(r"(tcp|tls|ws|wss|inproc)://\S+")


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterOptions:
    """Where shards run and where finished ones are recorded."""

    address: str | None = None  # a running scheduler, e.g. "tcp://127.0.0.1:8786"
    workers: int | None = None  # a local cluster of this many worker processes
    resume: str | None = None  # the state file
    shard_probes: int = DEFAULT_SHARD_PROBES
    connect_timeout: float = CONNECT_TIMEOUT  # seconds to reach the scheduler
    quiet: bool = False  # silence Dask's own log lines (the command line reports one line)
    rate_per_worker: float | None = None  # probes/s each worker machine sends, a ceiling
    max_rate_total: float | None = None  # probes/s all of them together, a ceiling
    plan_only: bool = False  # plan, shard and account; send nothing
    seed: int | None = None  # the host order's seed (None: from the scan's fingerprint)

    def __post_init__(self) -> None:
        if self.address is not None and self.workers is not None:
            raise UsageError("give either --cluster or --workers, not both")
        if self.workers is not None and self.workers < 1:
            raise UsageError(f"workers must be at least 1, not {self.workers}")
        if self.address is not None and not _ADDRESS.fullmatch(self.address):
            raise UsageError(
                f"cluster address must look like tcp://HOST:PORT, not {self.address!r}"
            )
        if self.shard_probes < 1:
            raise UsageError(f"shard size must be at least 1 probe, not {self.shard_probes}")
        for name, value in (
            ("rate per worker", self.rate_per_worker),
            ("total rate", self.max_rate_total),
        ):
            if value is not None and not value > 0:
                raise UsageError(f"{name} must be positive, not {value:g}")

    def ceilings(self, options: EngineOptions, machines: int) -> EngineOptions:
        """``options`` with ``--rate`` lowered to what ``machines`` workers may send together.

        ``--rate``, ``--max-rate-total`` and ``--rate-per-worker`` x machines are all
        ceilings of the whole scan: the lowest holds; ``EngineOptions.share`` then splits
        it among the slots.
        """
        limits = [
            r
            for r in (
                options.rate,
                self.max_rate_total,
                None if self.rate_per_worker is None else self.rate_per_worker * machines,
            )
            if r is not None
        ]
        return dataclasses.replace(options, rate=min(limits) if limits else None)


def _dask_error(name: str, exc: BaseException) -> bool:
    """Whether ``exc`` is Dask's exception class ``name`` (False when Dask is absent)."""
    import sys

    module = sys.modules.get("distributed")
    cls = getattr(module, name, None) if module is not None else None
    if cls is None and module is not None:
        cls = getattr(sys.modules.get("distributed.client"), name, None)
    return isinstance(cls, type) and isinstance(exc, cls)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


# --- the client side ---------------------------------------------------------------


def _describe(shard: Shard) -> str:
    first, last = shard.targets[0].address, shard.targets[-1].address
    hosts = first if first == last else f"{first}..{last}"
    return f"{hosts}, {len(shard.ports)} ports"


# A task sent to a worker may carry several small shards, run one after another there,
# so that the round trip to the cluster (the bulk of a shard's fixed cost) is paid once
# for them: shards of one host block (they never run at once anyway, politeness), and
# shards of other free host blocks while the plan has enough shards left to keep every
# slot busy. Up to this much work a task: a default shard's worth.
BATCH_PROBES = DEFAULT_SHARD_PROBES
BATCH_SHARDS = 16

# What a submitted task comes back as: one shard's (index, results), or a batch's list.
_Done = tuple[int, list[PortResult]] | list[tuple[int, list[PortResult]]]


class _Scheduler:
    """Hands out shards politely and gives results back in shard order, once each."""

    def __init__(
        self,
        shards: Sequence[Shard],
        make_task: Callable[[Shard], ShardTask],
        executor: Executor,
        journal: ShardJournal | None,
        *,
        port_blocks: int = 1,
    ) -> None:
        self.shards = shards
        self._make_task = make_task
        self._executor = executor
        self._journal = journal
        # A shard of the last port block finishes its hosts (port block major order).
        self._host_blocks = max(1, len(shards) // max(1, port_blocks))
        self._last_port_block = max(1, port_blocks) - 1
        done = journal.finished if journal is not None else frozenset()
        # Shards are made as they come up: a few ahead of the running ones (enough to
        # find one whose host block is free), never the whole plan.
        self._todo = (shards[i] for i in range(len(shards)) if i not in done)
        self._pending: list[Shard] = []
        self._from_journal = set(done)
        self._running: dict[asyncio.Future[_Done], tuple[list[Shard], int]] = {}
        self._in_flight = 0  # shards in self._running
        self._busy_hosts: set[int] = set()
        self._finished: dict[int, list[PortResult]] = {}
        self._next = 0  # the next shard index to hand out
        # Shards submitted beyond the slots wait in the cluster's own queue, so a slot
        # that finishes starts its next shard without a round trip to this client (the
        # bulk of a shard's fixed cost). Each still holds a host block of its own.
        self._depth = executor.slots + getattr(executor, "ahead", 0)
        self._batches = callable(getattr(executor, "submit_batch", None))
        # Shards submitted or finished but not yet handed out: bounds the memory held
        # for results that wait on a slower shard before them.
        self._window = max(4, 2 * self._depth)

    def _outstanding(self) -> int:
        return self._in_flight + len(self._finished)

    def _fill(self) -> None:
        # Enough pending shards to find a free host block, and a batch to send with it.
        ahead = self._window + self._depth + (BATCH_SHARDS if self._batches else 0)
        while len(self._pending) < ahead and (shard := next(self._todo, None)) is not None:
            self._pending.append(shard)
        while len(self._running) < self._depth and self._pending:
            # With the window full only the lowest pending shard may start: the others
            # would wait on it anyway, and it must not wait on them.
            eligible = self._pending if self._outstanding() < self._window else self._pending[:1]
            shard = next((s for s in eligible if s.host_block not in self._busy_hosts), None)
            if shard is None:
                return
            self._pending.remove(shard)
            if not shard.targets:  # every host of it excluded, or past the walk's end
                self._finished[shard.index] = []
                continue
            unit = [shard]
            if self._batches:
                unit += self._companions(shard)
            self._start(unit, 0)
            while len(self._pending) < ahead and (more := next(self._todo, None)) is not None:
                self._pending.append(more)

    def _companions(self, first: Shard) -> list[Shard]:
        """Pending shards to send along with ``first``, in order, up to a batch's worth
        of work: of its host block (they would wait for it anyway), and of other free
        host blocks while enough shards and host blocks are left for every slot."""
        left = len(self.shards) - self._next - self._outstanding()
        spread = min(BATCH_SHARDS, left // (2 * self._depth))  # shards, other blocks too
        most_blocks = self._host_blocks // self._depth  # host blocks in one batch
        probes, blocks, taken = first.probe_count, {first.host_block}, list[Shard]()
        for shard in self._pending:
            if len(taken) + 1 >= BATCH_SHARDS or probes + shard.probe_count > BATCH_PROBES:
                break
            if not shard.targets:
                continue  # finished without being sent (_fill)
            if shard.host_block not in blocks:
                if (
                    shard.host_block in self._busy_hosts
                    or len(taken) + 1 >= spread
                    or len(blocks) >= most_blocks
                ):
                    continue
                blocks.add(shard.host_block)
            probes += shard.probe_count
            taken.append(shard)
        for shard in taken:
            self._pending.remove(shard)
        return taken

    def _start(self, shards: list[Shard], attempt: int) -> None:
        future: asyncio.Future[_Done]
        if len(shards) == 1:
            future = self._executor.submit(self._make_task(shards[0]), attempt)  # type: ignore[assignment]
        else:
            submit_batch = self._executor.submit_batch  # type: ignore[attr-defined]
            future = submit_batch([self._make_task(s) for s in shards], attempt)
        self._running[future] = (shards, attempt)
        self._in_flight += len(shards)
        self._busy_hosts.update(s.host_block for s in shards)

    def _release(self) -> Iterator[ResultBatch]:
        """Each shard's results that are next in order, one batch a shard."""
        while self._next < len(self.shards):
            index = self._next
            if index in self._finished:
                results = self._finished.pop(index)
            elif index in self._from_journal:
                assert self._journal is not None
                results = self._journal.results(index)  # read when its turn comes
            else:
                return
            self._next += 1
            done: tuple[str, ...] = ()
            if index // self._host_blocks == self._last_port_block:
                done = tuple(dict.fromkeys(r.host for r in results))
            yield ResultBatch(results, done=done)

    async def batches(self) -> Batches:
        try:
            for released in self._release():
                yield released
            while self._next < len(self.shards):
                self._fill()
                for released in self._release():  # empty shards finish in _fill
                    yield released
                if self._next >= len(self.shards):
                    break
                if not self._running:  # pragma: no cover (a bug, not a user error)
                    raise RuntimeError("cluster scan stalled with nothing running")
                done, _ = await asyncio.wait(
                    list(self._running), return_when=asyncio.FIRST_COMPLETED
                )
                for future in done:
                    shards, attempt = self._running.pop(future)
                    self._in_flight -= len(shards)
                    self._busy_hosts.difference_update(s.host_block for s in shards)
                    self._collect(future, shards, attempt)
                for released in self._release():
                    yield released
        finally:
            await self._cancel()

    def _collect(self, future: asyncio.Future[_Done], shards: list[Shard], attempt: int) -> None:
        assert isinstance(future, asyncio.Future)
        shard = shards[0]
        what = f"shard {shard.index}" if len(shards) == 1 else f"shards {shard.index}.."
        exc = future.exception()
        if exc is not None:
            if _dask_error("KilledWorker", exc):
                if attempt < RESUBMITS:
                    log.warning("%s: its workers kept dying; submitting it again", what)
                    self._start(shards, attempt + 1)
                    return
                raise NetworkError(
                    f"{what} ({_describe(shard)}) failed: every worker that ran it died"
                ) from exc
            if isinstance(exc, PortkitError):
                raise exc  # the engine's own one-line errors, from whichever worker
            if _dask_error("FutureCancelledError", exc):
                reason = getattr(exc, "reason", None) or "cancelled"
                raise NetworkError(
                    f"the dask scheduler gave up {what} ({_describe(shard)}): {reason}"
                ) from exc
            if _dask_error("CommClosedError", exc):
                # The scheduler died while the result was being fetched from its worker.
                raise NetworkError(
                    f"lost the dask scheduler or a worker while fetching {what} "
                    f"({_describe(shard)}): {_first_line(exc)}"
                ) from exc
            if isinstance(exc, (ImportError, AttributeError)):
                hint = " (is the same portkit installed on every worker?)"
            else:
                hint = ""
            raise NetworkError(
                f"{what} ({_describe(shard)}) failed on a worker: "
                f"{type(exc).__name__}: {_first_line(exc)}{hint}"
            ) from exc
        value = future.result()
        pairs = value if isinstance(value, list) else [value]
        if [i for i, _ in pairs] != [s.index for s in shards]:  # pragma: no cover (a bug)
            raise RuntimeError(f"{what} came back as shards {[i for i, _ in pairs]}")
        for index, results in pairs:
            if index < self._next or index in self._finished:
                continue  # ran twice (a retry raced its first run): it counts once
            if self._journal is not None:
                self._journal.record(index, results)
            self._finished[index] = results

    async def _cancel(self) -> None:
        running = [f for f in self._running if isinstance(f, asyncio.Future)]
        self._running.clear()
        self._in_flight = 0
        for future in running:
            future.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)


class ClusterScan:
    """One scan run as shards: :meth:`open` it, iterate :meth:`batches`, :meth:`close` it.

    Opening checks the state file and starts (or reaches) the cluster, so every input
    error is raised before any output is written.
    """

    def __init__(
        self,
        executor: Executor,
        scheduler: _Scheduler,
        journal: ShardJournal | None,
        engine_options: EngineOptions,
    ) -> None:
        self.engine_options = engine_options  # what each shard runs with: shares of the ceilings
        self._executor = executor
        self._scheduler = scheduler
        self._journal = journal
        self.shard_count = len(scheduler.shards)
        self.slots = executor.slots
        self.plan_only = False
        self.layout: Layout | None = None  # how the scan was cut (set by open)

    @classmethod
    async def open(cls, plan: ScanPlan, options: ClusterOptions, *, detect: bool) -> ClusterScan:
        """Check the state file, start the executor, cut the scan into shards.

        Raises:
            UsageError: bad options, or a state file of another scan.
            NetworkError: the scheduler cannot be reached or has no workers.
        """
        targets = TargetTable(plan.targets, exclude=plan.exclude)
        fingerprint = scan_fingerprint(plan, detect=detect)
        journal: ShardJournal | None = None
        if options.resume is not None and not options.plan_only:
            journal = ShardJournal.open_existing(options.resume, fingerprint=fingerprint)
        executor: Executor
        if options.plan_only:
            executor = PlanOnly(options.workers or 1)
        else:
            executor = make_executor(
                address=options.address,
                workers=options.workers,
                processes=plan.processes,
                connect_timeout=options.connect_timeout,
                quiet=options.quiet,
            )
        try:
            await executor.start()
            if journal is not None:
                layout = journal.layout
            else:
                layout = choose_layout(
                    len(targets),
                    plan.ports,
                    slots=executor.slots,
                    shard_probes=options.shard_probes,
                )
                seed = int(fingerprint[:16], 16) if options.seed is None else options.seed
                layout = dataclasses.replace(layout, order=Order.for_count(len(targets), seed))
            shards = make_shards(targets, plan.ports, layout)
            if journal is None and options.resume is not None:
                journal = ShardJournal.create(
                    options.resume,
                    fingerprint=fingerprint,
                    layout=layout,
                    shard_count=len(shards),
                )
        except BaseException:
            if journal is not None:
                journal.close()
            await executor.close()
            raise
        engine = options.ceilings(plan.options, executor.machines).share(executor.slots)

        # Shards run in this process may fork as a local scan does; elsewhere a shard
        # has its process (a cluster worker, a forked process) to itself.
        processes = plan.processes if isinstance(executor, InProcess) else 1

        level = "normal"
        if detect:
            from portkit.scan._identify import current_level

            level = current_level()

        def make_task(shard: Shard) -> ShardTask:
            return ShardTask(
                shard=shard,
                syn=plan.syn,
                options=engine,
                detect=detect,
                level=level,
                processes=processes,
            )

        log.debug(
            "%d shards of %d hosts x %d ports on %d slots",
            len(shards),
            layout.host_block,
            layout.port_block,
            executor.slots,
        )
        port_blocks = math.ceil(max(1, len(plan.ports)) / layout.port_block)
        scheduler = _Scheduler(shards, make_task, executor, journal, port_blocks=port_blocks)
        scan = cls(executor, scheduler, journal, engine)
        scan.plan_only = options.plan_only
        scan.layout = layout
        return scan

    async def batches(self) -> Batches:
        """Yield result batches as shards finish, in shard order; close when done.

        With ``plan_only``: make every shard as a scan would, yield nothing, and print
        what the plan holds and what making it cost to stderr.
        """
        if self.plan_only:
            try:
                self._account()
            finally:
                await self.close()
            return
        try:
            async with contextlib.aclosing(self._scheduler.batches()) as batches:
                async for batch in batches:
                    yield batch
        finally:
            await self.close()

    def _account(self) -> None:
        shards = self._scheduler.shards
        probes = hosts = 0
        for shard in shards:  # made one by one, dropped at once: as the scheduler does
            probes += shard.probe_count
            if shard.port_block == 0:
                hosts += len(shard.targets)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        options = self.engine_options
        rate = "no rate ceiling" if options.rate is None else f"{options.rate:,.0f} probes/s"
        print(
            f"plan: {probes:,} probes ({hosts:,} hosts), {len(shards):,} shards on "
            f"{self.slots} slots ({rate} each), peak memory {peak:,.0f} MiB; nothing sent",
            file=sys.stderr,
        )

    async def close(self) -> None:
        """Stop whatever runs, close the state file and the cluster (idempotent)."""
        if self._journal is not None:
            self._journal.close()
        await self._executor.close()


async def cluster_batches(
    plan: ScanPlan, options: ClusterOptions, *, detect: bool = False
) -> Batches:
    """Run ``plan`` as shards on a cluster; yield result batches as shards finish.

    The batches are those of a local :func:`~portkit.scan.scan_batches` run, regrouped:
    one per finished shard (several when shards finish together), in shard order.

    Raises:
        UsageError: bad options, or a state file of another scan.
        NetworkError: the scheduler cannot be reached or has no workers.
    """
    run = await ClusterScan.open(plan, options, detect=detect)
    async with contextlib.aclosing(run.batches()) as batches:
        async for batch in batches:
            yield batch
