"""Cluster scans against real loopback listeners: a local cluster, a separate scheduler and
worker processes, a worker killed mid-scan, and --resume after an interrupt.

Every address is on loopback (127.201.N.x, N chosen per run).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import ipaddress
import json
import os
import random
import re
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

import portkit
from portkit._errors import NetworkError, PortkitError
from portkit.cli import main
from portkit.scan._cluster import (
    BATCH_PROBES,
    BATCH_SHARDS,
    ClusterOptions,
    ClusterScan,
    _Scheduler,
    cluster_batches,
)
from portkit.scan._engine import EngineOptions
from portkit.scan._executors import Dask, InProcess, run_shards
from portkit.scan._model import PortResult, ResultBatch
from portkit.scan._ports import PortSet
from portkit.scan._scan import ScanPlan, plan_scan, scan_batches
from portkit.scan._shards import Layout, Order, Shard, ShardTask, make_shards, result_key

SRC = Path(portkit.__file__).resolve().parents[1]
BANNER = b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"


# --- the listeners ------------------------------------------------------------------


@dataclass
class Lab:
    """Listeners on four loopback hosts, and a port list without other programs' ports."""

    hosts: list[str]
    open: set[tuple[str, int]]
    ports: list[int]
    banner: tuple[str, int]  # the listener that greets with an SSH banner
    _socks: list[socket.socket] = field(default_factory=list)

    @property
    def host_spec(self) -> str:
        first, last = self.hosts[0], self.hosts[-1]
        return f"{first}-{last.rsplit('.', 1)[1]}"

    @property
    def port_spec(self) -> str:
        return ",".join(map(str, self.ports))

    async def plan(self, **kwargs: Any) -> ScanPlan:
        return await plan_scan([self.host_spec], self.port_spec, **kwargs)


def _serve(socks: list[socket.socket], stop: threading.Event) -> None:
    # Accept and answer every connection so backlogs never fill, scan after scan.
    with selectors.DefaultSelector() as sel:
        for sock in socks:
            sel.register(sock, selectors.EVENT_READ)
        while not stop.is_set():
            for key, _ in sel.select(timeout=0.1):
                listener = key.fileobj
                assert isinstance(listener, socket.socket)
                with contextlib.suppress(BlockingIOError, ConnectionError):
                    conn, _ = listener.accept()
                    with conn:
                        if listener is socks[0]:
                            with contextlib.suppress(OSError):
                                conn.sendall(BANNER)


def _busy_ports() -> set[int]:
    return {
        c.laddr.port
        for c in psutil.net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr
    }


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    net = random.randrange(1, 250)
    hosts = [f"127.201.{net}.{i}" for i in range(1, 5)]
    socks: list[socket.socket] = []
    for host in (hosts[0], hosts[0], hosts[1], hosts[3]):
        sock = socket.socket()
        sock.bind((host, 0))
        sock.listen(64)
        sock.setblocking(False)
        socks.append(sock)
    opened = {(s.getsockname()[0], s.getsockname()[1]) for s in socks}
    busy = _busy_ports()
    ports = sorted({p for p in range(21000, 22000) if p not in busy} | {port for _, port in opened})
    stop = threading.Event()
    thread = threading.Thread(target=_serve, args=(socks, stop), daemon=True)
    thread.start()
    try:
        banner = (socks[0].getsockname()[0], socks[0].getsockname()[1])
        yield Lab(hosts=hosts, open=opened, ports=ports, banner=banner, _socks=socks)
    finally:
        stop.set()
        thread.join(timeout=10)
        for sock in socks:
            sock.close()


async def collect(batches: AsyncIterator[ResultBatch]) -> list[PortResult]:
    out: list[PortResult] = []
    async with contextlib.aclosing(batches) as stream:  # type: ignore[type-var]
        async for batch in stream:
            assert not batch.counts  # nothing asked for counts
            out.extend(batch.results)
    return out


def comparable(results: list[PortResult]) -> list[tuple[object, ...]]:
    """Everything but the round-trip time, in a canonical order."""
    return sorted(
        (
            r.host,
            r.transport,
            r.port,
            r.state.value,
            r.reason,
            r.hostname,
            r.expected,
            None if r.identified is None else (r.identified.service, r.identified.product),
        )
        for r in results
    )


def shard_order(plan: ScanPlan, layout: Layout, results: list[PortResult]) -> list[PortResult]:
    """``results`` rearranged in the order a cluster scan must hand them out."""
    by_probe = {(r.host, r.transport, r.port): r for r in results}
    ordered: list[PortResult] = []
    for shard in make_shards(list(plan.iter_targets()), plan.ports, layout):
        chunk = [
            by_probe[(t.address, transport, port)]
            for t in shard.targets
            for transport in ("tcp", "udp")
            for port in shard.ports.for_transport(transport)
        ]
        ordered += sorted(chunk, key=result_key)
    return ordered


def assert_complete(plan: ScanPlan, results: list[PortResult]) -> None:
    probes = [(r.host, r.transport, r.port) for r in results]
    assert len(probes) == len(set(probes)) == plan.probe_count  # nothing twice, nothing missing


# --- a local cluster ----------------------------------------------------------------


async def test_local_cluster_equals_a_single_machine_scan_and_splits_the_rate(lab: Lab) -> None:
    plan = await lab.plan(rate=50_000.0, concurrency=512)
    single = await collect(scan_batches(plan))
    run = await ClusterScan.open(plan, ClusterOptions(workers=2, shard_probes=700), detect=False)
    batches = run.batches()  # closes the cluster when done, or when closed early
    try:
        assert run.slots == 2
        # The scheduler and both workers listen on 127.0.0.1 only; no dashboard runs.
        me = psutil.Process()
        listening = [
            c.laddr
            for proc in (me, *me.children(recursive=True))
            for c in proc.net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN and c.laddr.ip not in lab.hosts
        ]
        assert len(listening) >= 3
        assert {addr.ip for addr in listening} == {"127.0.0.1"}
        assert 8787 not in {addr.port for addr in listening}
        assert run.engine_options.rate == 25_000.0  # the global ceiling, split per worker
        assert run.engine_options.concurrency == 256
    except BaseException:
        await run.close()
        raise
    clustered = await collect(batches)
    assert_complete(plan, clustered)
    assert comparable(clustered) == comparable(single)
    assert {(r.host, r.port) for r in clustered if r.state.value == "open"} == lab.open
    # Deterministic order: shard by shard, sorted within each (RTTs aside); the hosts
    # walked in a permuted order fixed by the scan itself.
    layout = run.layout
    assert layout is not None
    assert layout.order is not None
    assert (layout.host_block, layout.port_block) == (1, 700)
    again = await ClusterScan.open(
        plan, ClusterOptions(plan_only=True, shard_probes=700), detect=False
    )
    assert again.layout == layout
    assert run.shard_count == len(make_shards(list(plan.iter_targets()), plan.ports, layout))
    assert [result_key(r) for r in clustered] == [
        result_key(r) for r in shard_order(plan, layout, clustered)
    ]


@pytest.mark.skipif(
    importlib.util.find_spec("portkit.scan._identify") is None,
    reason="identification (portkit.scan._identify) is not in this tree yet",
)
@pytest.mark.usefixtures("names_cache")  # cold and warm: the first scan after an install too
async def test_detection_runs_on_the_workers(lab: Lab) -> None:
    plan = await lab.plan()
    single = await collect(scan_batches(plan, detect=True))
    clustered = await collect(cluster_batches(plan, ClusterOptions(workers=2), detect=True))
    assert comparable(clustered) == comparable(single)
    ssh = [r for r in clustered if r.identified is not None and r.identified.service == "ssh"]
    assert [(r.host, r.port) for r in ssh] == [lab.banner]


# --- a separate scheduler and workers -----------------------------------------------


@dataclass
class DaskProcesses:
    address: str
    scheduler: subprocess.Popen[bytes]
    workers: list[subprocess.Popen[bytes]]


def _dask(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    with open(log, "wb") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", "dask", *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )


def _wait_for_scheduler_file(path: Path, proc: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the dask scheduler exited"
        with contextlib.suppress(FileNotFoundError, ValueError, KeyError):
            return str(json.loads(path.read_text())["address"])
        time.sleep(0.05)  # polling the file the scheduler writes once it listens
    raise AssertionError("the dask scheduler did not start within 60 s")


@pytest.fixture
def dask_processes(tmp_path: Path) -> Iterator[DaskProcesses]:
    """``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1, no dashboards."""
    info = tmp_path / "scheduler.json"
    scheduler = _dask(
        [
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--no-dashboard",
            "--scheduler-file",
            str(info),
        ],
        tmp_path / "scheduler.log",
    )
    procs = [scheduler]
    try:
        address = _wait_for_scheduler_file(info, scheduler)
        workers = [
            _dask(
                [
                    "worker",
                    address,
                    "--nthreads",
                    "1",
                    "--no-nanny",
                    "--no-dashboard",
                    "--host",
                    "127.0.0.1",
                    "--name",
                    f"pk-cluster-w{i}",
                ],
                tmp_path / f"worker{i}.log",
            )
            for i in range(2)
        ]
        procs += workers
        yield DaskProcesses(address=address, scheduler=scheduler, workers=workers)
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def _watcher(address: str) -> Any:
    import distributed

    client = await distributed.Client(address, asynchronous=True, set_as_default=False)  # type: ignore[no-untyped-call]
    await client.wait_for_workers(2, timeout=60)
    return client


async def test_scheduler_and_worker_processes_give_the_single_machine_results(
    lab: Lab, dask_processes: DaskProcesses
) -> None:
    watcher = await _watcher(dask_processes.address)
    try:
        plan = await lab.plan()
        single = await collect(scan_batches(plan))
        options = ClusterOptions(address=dask_processes.address, shard_probes=500)
        clustered = await collect(cluster_batches(plan, options))
        assert_complete(plan, clustered)
        assert comparable(clustered) == comparable(single)
        assert len((await watcher.scheduler.identity(n_workers=-1))["workers"]) == 2
        # The command line too: --cluster gives the report a local scan gives.
        args = [lab.host_spec, "-p", lab.port_spec, "-o", "xml"]
        remote = await asyncio.to_thread(run_portkit, *args, "--cluster", dask_processes.address)
        local = await asyncio.to_thread(run_portkit, *args)
        assert remote.returncode == local.returncode == 0, remote.stderr + local.stderr
        assert remote.stderr == ""
        assert normalise("xml", remote.stdout) == normalise("xml", local.stdout)
    finally:
        await watcher.close()


async def test_a_worker_killed_mid_shard_loses_nothing_and_counts_nothing_twice(
    lab: Lab, dask_processes: DaskProcesses
) -> None:
    watcher = await _watcher(dask_processes.address)
    try:
        pids: dict[str, int] = await watcher.run(os.getpid)
        # A rate ceiling makes each 500-probe shard last about a second.
        plan = await lab.plan(rate=1000.0)
        single = await collect(scan_batches(await lab.plan()))
        options = ClusterOptions(address=dask_processes.address, shard_probes=500)
        scan_task = asyncio.ensure_future(collect(cluster_batches(plan, options)))
        victim = None
        deadline = time.monotonic() + 60
        while victim is None:
            assert not scan_task.done(), "the scan ended before a worker held a shard"
            assert time.monotonic() < deadline, "no worker took a shard within 60 s"
            processing: dict[str, list[str]] = await watcher.processing()
            victim = next(
                (
                    w
                    for w, keys in processing.items()
                    if any("portkit-shard" in str(k) for k in keys)
                ),
                None,
            )
            if victim is None:
                await asyncio.sleep(0.02)  # polling the scheduler's own state
        os.kill(pids[victim], signal.SIGKILL)
        clustered = await asyncio.wait_for(scan_task, timeout=90)
        killed = next(p for p in dask_processes.workers if p.pid == pids[victim])
        assert killed.wait(timeout=10) == -signal.SIGKILL
        assert_complete(plan, clustered)
        assert comparable(clustered) == comparable(single)
    finally:
        await watcher.close()


def test_a_lost_scheduler_is_one_line_and_the_finished_shards_resume(
    lab: Lab, dask_processes: DaskProcesses, tmp_path: Path
) -> None:
    state = tmp_path / "scan.state"
    common = [lab.host_spec, "-p", lab.port_spec, "-o", "json"]
    shards = ["--shard-size", "400"]
    env = dict(os.environ, PYTHONPATH=str(SRC))
    scan = subprocess.Popen(
        [
            *portkit_cmd(*common, *shards, "--cluster", dask_processes.address, "--rate", "800"),
            "--resume",
            str(state),
            "--output",
            str(tmp_path / "out.json"),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not state.exists() or len(state.read_bytes().splitlines()) < 2:
        assert scan.poll() is None, scan.communicate()
        assert time.monotonic() < deadline, "no shard was recorded within 60 s"
        time.sleep(0.02)  # polling the state file the scan appends to
    dask_processes.scheduler.kill()
    _, err = scan.communicate(timeout=90)
    assert scan.returncode == 1
    assert len(err.strip().splitlines()) == 1
    assert "dask scheduler" in err
    # The report streamed into a file aside, removed when the scan failed: no half a document.
    assert not [p.name for p in tmp_path.iterdir() if "out.json" in p.name]
    header, *records = state.read_text().splitlines()
    assert 1 <= len(records) < json.loads(header)["shards"]
    resumed = run_portkit(*common, "--resume", str(state))  # the state's own block sizes
    reference = run_portkit(*common)
    assert resumed.returncode == reference.returncode == 0, resumed.stderr + reference.stderr
    assert normalise("json", resumed.stdout) == normalise("json", reference.stdout)


async def test_an_unreachable_scheduler_is_a_one_line_network_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, never listening: connections are refused
        plan = ScanPlan(targets=(), ports=PortSet(tcp=(1,)))
        options = ClusterOptions(address=f"tcp://127.0.0.1:{port}", connect_timeout=1.0)
        with pytest.raises(
            NetworkError, match=f"cannot reach the dask scheduler at 'tcp://127.0.0.1:{port}'"
        ):
            await collect(cluster_batches(plan, options))


async def test_tcp_and_udp_ports_shard_like_any_other(lab: Lab, tmp_path: Path) -> None:
    # --resume alone runs the shards in this process: the sharding is the same.
    plan = await plan_scan(lab.hosts[:2], "T:21000-21020,U:21000-21020", timeout=0.5)
    single = await collect(scan_batches(plan))
    options = ClusterOptions(resume=str(tmp_path / "state"), shard_probes=8)
    sharded = await collect(cluster_batches(plan, options))
    assert_complete(plan, sharded)
    assert {r.transport for r in sharded} == {"tcp", "udp"}
    assert comparable(sharded) == comparable(single)


async def test_resume_with_processes_runs_shards_in_forked_processes(
    lab: Lab, tmp_path: Path
) -> None:
    # --resume --processes 2: the Forked executor, two shards at a time, each in a
    # process of its own; the same results as one local scan, and the state file
    # records every shard (a second run has nothing left to do).
    plan = await lab.plan(timeout=0.5, processes=2)
    single = await collect(scan_batches(await lab.plan(timeout=0.5)))
    options = ClusterOptions(resume=str(tmp_path / "state"), shard_probes=300)
    run = await ClusterScan.open(plan, options, detect=False)
    assert run.slots == 2
    assert run.shard_count > 2
    assert run.engine_options.concurrency == plan.options.concurrency  # none: none to split
    sharded = await collect(run.batches())
    assert_complete(plan, sharded)
    assert comparable(sharded) == comparable(single)
    again = await collect(cluster_batches(plan, options))  # all read back from the state
    assert comparable(again) == comparable(single)


async def test_a_failing_forked_shard_is_one_error() -> None:
    from portkit.scan._executors import Forked
    from portkit.scan._targets import Target

    executor = Forked(1)
    # A shard that cannot run (a port number past 65535 fails before any probe leaves).
    bad = ShardTask(
        shard=Shard(
            index=0,
            host_block=0,
            port_block=0,
            targets=(Target(address="127.0.0.1"),),
            ports=PortSet(tcp=(70000,)),
        ),
        syn=False,
        options=EngineOptions(),
        detect=False,
    )
    try:
        with pytest.raises(PortkitError, match="scan process failed"):
            await executor.submit(bad, 0)
    finally:
        await executor.close()


# --- politeness ---------------------------------------------------------------------


class _Recording(InProcess):
    """Runs shards in this process, three at a time, and records which run together.

    A task runs until its future is done: that is what the scheduler sees (a future's
    done callbacks run an iteration of the loop later, so they would lag behind it)."""

    def __init__(self) -> None:
        super().__init__(slots=3)
        self.ahead = 0
        self._live: list[tuple[asyncio.Future[Any], list[int]]] = []
        self.overlaps: list[list[int]] = []

    def _record(self, future: asyncio.Future[Any], blocks: list[int]) -> None:
        """The host blocks of the tasks running now, with those of ``future``'s."""
        self._live = [(f, b) for f, b in self._live if not f.done()]
        self._live.append((future, blocks))
        self.overlaps.append([block for _, running in self._live for block in running])

    def submit(self, task: ShardTask, attempt: int) -> asyncio.Future[tuple[int, list[PortResult]]]:
        future = super().submit(task, attempt)
        self._record(future, [task.shard.host_block])
        return future


async def test_a_host_block_is_never_in_two_running_shards(lab: Lab) -> None:
    plan = await lab.plan()
    targets = list(plan.iter_targets())
    # Two host blocks and many port blocks: three slots, but only two can be busy.
    shards = make_shards(targets, plan.ports, Layout(host_block=2, port_block=100))
    executor = _Recording()

    def make_task(shard: Shard) -> ShardTask:
        return ShardTask(shard=shard, syn=False, options=EngineOptions(), detect=False)

    scheduler = _Scheduler(shards, make_task, executor, None)
    results = await collect(scheduler.batches())
    assert_complete(plan, results)
    assert max(len(o) for o in executor.overlaps) == 2
    assert all(len(o) == len(set(o)) for o in executor.overlaps)


class _Batching(_Recording):
    """As _Recording, and runs the batches of shards the scheduler sends together as a
    worker does (run_shards, in a thread of its own), recording them."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[Shard]] = []

    def submit_batch(
        self, tasks: Sequence[ShardTask], attempt: int
    ) -> asyncio.Future[list[tuple[int, list[PortResult]]]]:
        self.batches.append([t.shard for t in tasks])
        future = asyncio.ensure_future(asyncio.to_thread(run_shards, tasks))
        self._record(future, sorted({t.shard.host_block for t in tasks}))
        return future


async def test_shards_of_one_host_block_go_together_and_hosts_are_done_after_their_last(
    lab: Lab,
) -> None:
    plan = await lab.plan()
    targets = list(plan.iter_targets())
    # One host block, port blocks of 20: the shards that wait on the running one are
    # sent together, up to a batch's worth of work.
    layout = Layout(host_block=len(targets), port_block=20)
    shards = make_shards(targets, plan.ports, layout)
    port_blocks = len(shards)
    assert port_blocks > 2 * BATCH_SHARDS  # enough for full batches
    executor = _Batching()

    def make_task(shard: Shard) -> ShardTask:
        return ShardTask(shard=shard, syn=False, options=EngineOptions(), detect=False)

    scheduler = _Scheduler(shards, make_task, executor, None, port_blocks=port_blocks)
    batches = [b async for b in scheduler.batches()]
    results = [r for b in batches for r in b.results]
    assert_complete(plan, results)
    assert [result_key(r) for r in results] == [
        result_key(r) for r in shard_order(plan, layout, results)
    ]
    assert executor.batches
    for batch in executor.batches:
        assert len({s.host_block for s in batch}) == 1
        assert len(batch) <= BATCH_SHARDS
        assert sum(s.probe_count for s in batch) <= BATCH_PROBES
    assert [len(b) for b in executor.batches[:-1]] == [BATCH_SHARDS] * (len(executor.batches) - 1)
    assert sum(len(b) for b in executor.batches) == port_blocks
    assert max(len(o) for o in executor.overlaps) == 1  # politeness holds
    # A host is done once its last port block is handed on, and not before.
    done = [(i, b.done) for i, b in enumerate(batches) if b.done]
    assert [i for i, _ in done] == [port_blocks - 1]
    assert sorted(h for _, hosts in done for h in hosts) == sorted(t.address for t in targets)


async def test_small_shards_of_many_host_blocks_go_several_to_a_task_politely(
    lab: Lab,
) -> None:
    # Hosts of loopback where nothing listens (closed ports): 24 host blocks x 10 port
    # blocks on three slots.
    plan = await plan_scan([f"127.202.{lab.hosts[0].split('.')[2]}.1-24"], "1-40")
    targets = list(plan.iter_targets())
    layout = Layout(host_block=1, port_block=4)
    shards = make_shards(targets, plan.ports, layout)
    executor = _Batching()

    def make_task(shard: Shard) -> ShardTask:
        return ShardTask(shard=shard, syn=False, options=EngineOptions(), detect=False)

    port_blocks = len(shards) // len(targets)
    scheduler = _Scheduler(shards, make_task, executor, None, port_blocks=port_blocks)
    results = await collect(scheduler.batches())
    assert_complete(plan, results)
    assert [result_key(r) for r in results] == [
        result_key(r) for r in shard_order(plan, layout, results)
    ]
    assert any(len({s.host_block for s in batch}) > 1 for batch in executor.batches)
    # Never a host block in two tasks running at once, batched or not; and several
    # tasks at once (a batch does not take every host block).
    assert all(len(o) == len(set(o)) for o in executor.overlaps)
    assert max(len({*o}) for o in executor.overlaps) > 8
    # A batch takes at most a slot's share of the host blocks.
    assert max(len({s.host_block for s in batch}) for batch in executor.batches) <= 24 // 3


async def test_a_plan_of_few_shards_sends_them_one_by_one(lab: Lab) -> None:
    # Three shards, three slots: batching them would leave two slots idle.
    plan = await plan_scan(lab.hosts[:3], lab.port_spec)
    targets = list(plan.iter_targets())
    shards = make_shards(targets, plan.ports, Layout(host_block=1, port_block=len(plan.ports)))
    executor = _Batching()

    def make_task(shard: Shard) -> ShardTask:
        return ShardTask(shard=shard, syn=False, options=EngineOptions(), detect=False)

    results = await collect(_Scheduler(shards, make_task, executor, None).batches())
    assert_complete(plan, results)
    assert executor.batches == []
    assert max(len(o) for o in executor.overlaps) == 3


async def test_a_dask_worker_runs_a_batch_of_shards(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[int] = []
    submit_batch = Dask.submit_batch

    def spy(self: Dask, tasks: Sequence[ShardTask], attempt: int) -> Any:
        sent.append(len(tasks))
        return submit_batch(self, tasks, attempt)

    monkeypatch.setattr(Dask, "submit_batch", spy)
    plan = await plan_scan([lab.hosts[0]], lab.port_spec)
    single = await collect(scan_batches(plan))
    clustered = await collect(cluster_batches(plan, ClusterOptions(workers=1, shard_probes=50)))
    assert comparable(clustered) == comparable(single)
    assert sent
    assert max(sent) > 1


# --- resume after an interrupt, every output format --------------------------------

_XML_VOLATILE = re.compile(
    r'\b(args|start|startstr|starttime|endtime|time|timestr|elapsed|summary)="[^"]*"'
)


def normalise(fmt: str, text: str, *, ordered: bool = False) -> str:
    """``text`` without times; hosts in address order unless ``ordered`` (a cluster scan
    writes each host when its last shard is in, in shard order; one process, sorted)."""
    if fmt == "xml":
        text = _XML_VOLATILE.sub(r'\1=""', re.sub(r"<!-- portkit .*? -->", "", text))
        if ordered:
            return text
        head, sep, rest = text.partition("<host ")
        hosts = re.findall(r"<host .*?</host>\n", sep + rest, flags=re.DOTALL)
        tail = (sep + rest)[sum(map(len, hosts)) :]
        return head + "".join(sorted(hosts, key=_host_key)) + tail
    if fmt == "grep":
        lines = [line for line in text.splitlines() if not line.startswith("#")]
        return "\n".join(lines if ordered else sorted(lines, key=_host_key))
    if fmt == "table":
        blocks = [re.sub(r" in [\d.]+ s", " in - s", b) for b in text.split("\n\n")]
        return "\n\n".join(blocks if ordered else sorted(blocks[:-1], key=_host_key) + blocks[-1:])

    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {
                k: clean(v)
                for k, v in value.items()
                if k not in ("args", "start", "end", "elapsed", "rtt_ms")
            }
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    if fmt == "json":
        document = clean(json.loads(text))
        if not ordered:
            document["hosts"].sort(key=lambda h: ipaddress.ip_address(h["address"]))
        return json.dumps(document, sort_keys=True)
    return "\n".join(
        json.dumps(clean(json.loads(line)), sort_keys=True) for line in text.splitlines()
    )


def _host_key(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The address a host's part of a report (an XML element, a grep line, a table) is of."""
    for pattern in (r'addr="([^"]+)"', r"^Host: (\S+)", r"^(\S+)"):
        if found := re.search(pattern, text.lstrip("\n")):
            return ipaddress.ip_address(found.group(1))
    raise AssertionError(f"no address in {text!r}")


def portkit_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "portkit", "scan", *args]


def run_portkit(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(SRC))
    return subprocess.run(portkit_cmd(*args), env=env, capture_output=True, text=True, timeout=100)


def test_resume_after_an_interrupt_gives_the_full_scan_in_every_format(
    lab: Lab, tmp_path: Path
) -> None:
    state = tmp_path / "scan.state"
    common = [lab.host_spec, "-p", lab.port_spec]
    shards = ["--shard-size", "400"]
    env = dict(os.environ, PYTHONPATH=str(SRC))
    # A slow first run (a low rate ceiling), interrupted once two shards are recorded.
    first = subprocess.Popen(
        portkit_cmd(*common, *shards, "--rate", "600", "--resume", str(state), "-o", "jsonl"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not state.exists() or len(state.read_bytes().splitlines()) < 3:
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline, "no shard was recorded within 60 s"
        time.sleep(0.02)  # polling the state file the scan appends to
    first.send_signal(signal.SIGINT)
    _, err = first.communicate(timeout=60)
    assert first.returncode == 130, err
    assert "interrupted" in err
    header, *records = state.read_text().splitlines()
    total = json.loads(header)["shards"]
    assert 2 <= len(records) < total  # interrupted mid-scan

    # Resume on a local cluster first (it runs the missing shards), then replay the
    # state in every format; each must equal an uninterrupted single-machine scan.
    for fmt, extra in (
        ("xml", ["--workers", "2"]),
        ("json", []),
        ("jsonl", []),
        ("grep", []),
        ("table", []),
    ):
        resumed = run_portkit(*common, "--resume", str(state), "-o", fmt, *extra)
        assert resumed.returncode == 0, resumed.stderr
        reference = run_portkit(*common, "-o", fmt)
        assert reference.returncode == 0, reference.stderr
        if fmt == "jsonl":
            # Lines stream as found: a local scan in engine order, a sharded one in
            # shard order (the same on every run, resumed or not).
            lines = normalise(fmt, resumed.stdout).splitlines()
            assert sorted(lines) == sorted(normalise(fmt, reference.stdout).splitlines())
        else:
            # The same hosts and ports; a sharded scan writes each host as its last
            # shard comes in, so in shard order rather than sorted.
            assert normalise(fmt, resumed.stdout) == normalise(fmt, reference.stdout)
        # That order is the same on every run, resumed or not.
        fresh = run_portkit(*common, *shards, "--resume", str(tmp_path / fmt), "-o", fmt)
        assert normalise(fmt, resumed.stdout, ordered=True) == normalise(
            fmt, fresh.stdout, ordered=True
        )
    assert len(state.read_text().splitlines()) == total + 1  # each shard recorded once


# --- command-line errors ------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cluster", "127.0.0.1:8786"], "cluster address must look like tcp://HOST:PORT"),
        (["--workers", "0"], "workers must be at least 1, not 0"),
        (["--cluster", "tcp://127.0.0.1:1", "--workers", "2"], "not allowed with argument"),
        (["--resume", "x", "--shard-size", "0"], "at least 1 probe, not 0"),
        (["--shard-size", "100"], "--shard-size needs --workers, --cluster or --resume"),
        (["--rate-per-worker", "10"], "--rate-per-worker needs --workers, --cluster or --resume"),
        (["--max-rate-total", "10"], "--max-rate-total needs --workers, --cluster or --resume"),
        (["--workers", "2", "--rate-per-worker", "0"], "rate per worker must be positive, not 0"),
        (["--workers", "2", "--max-rate-total=-5"], "total rate must be positive, not -5"),
    ],
)
def test_bad_cluster_options_exit_2_with_one_line(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        code = main(["scan", "127.0.0.1", "-p", "1", *args])
    except SystemExit as exc:  # argparse's own errors leave through SystemExit
        code = exc.code  # type: ignore[assignment]
    assert code == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_a_state_file_of_another_scan_writes_no_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    assert main(["scan", "127.0.0.1", "-p", "1-3", "--resume", str(state), "-o", "json"]) == 0
    capsys.readouterr()
    before = state.read_bytes()
    out = tmp_path / "out.xml"
    code = main(
        [
            "scan",
            "127.0.0.1",
            "-p",
            "1-4",
            "--resume",
            str(state),
            "-o",
            "xml",
            "--output",
            str(out),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert "belongs to a different scan" in err
    assert len(err.splitlines()) == 1
    assert not out.exists()
    assert state.read_bytes() == before


async def test_queued_shards_keep_a_host_block_each_and_empty_shards_are_not_sent(
    lab: Lab,
) -> None:
    plan = await lab.plan()
    targets = list(plan.iter_targets())
    # A walk over more positions than hosts (a walk for more hosts, the extra skipped):
    # some one-host blocks fall past the hosts and are empty.
    order = Order.for_count(len(targets) + 6, seed=11)
    layout = Layout(host_block=1, port_block=250, order=order)
    shards = make_shards(targets, plan.ports, layout)
    assert any(not s.targets for s in shards)
    executor = _Recording()
    executor.ahead = 3  # as a Dask cluster queues shards beyond its slots

    def make_task(shard: Shard) -> ShardTask:
        return ShardTask(shard=shard, syn=False, options=EngineOptions(), detect=False)

    scheduler = _Scheduler(shards, make_task, executor, None)
    results = await collect(scheduler.batches())
    assert_complete(plan, results)
    busy = min(6, len(targets))  # slots + queued, one host block each
    assert busy > executor.slots
    assert max(len(o) for o in executor.overlaps) == busy
    assert all(len(o) == len(set(o)) for o in executor.overlaps)
    assert len(executor.overlaps) == sum(1 for s in shards if s.targets)
