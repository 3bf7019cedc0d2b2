"""The executors behind one interface: where a scan's work runs, and its ceilings' split."""

from __future__ import annotations

import asyncio
import mmap
import os
import pickle
import struct
from collections.abc import Iterator

import pytest

from portkit.results import Batches, PortResult, PortState, ResultBatch
from portkit.scan._engine import EngineOptions, ProbeKind, run_socket_engine
from portkit.scan._executors import (
    Dask,
    Executor,
    Forked,
    InProcess,
    PlanOnly,
    Sharded,
    local_executor,
)
from portkit.scan._shard import MIN_PROBES_PER_PROCESS, QUEUED_MESSAGES
from portkit.scan._targets import Target

from .conftest import Listener


def executors(slots: int) -> list[Executor]:
    dask = Dask(address=None, workers=slots, timeout=1.0, quiet=True)
    dask.slots = slots  # what start() learns from the cluster
    return [InProcess(slots), PlanOnly(slots), Forked(slots), Sharded(slots), dask]


@pytest.mark.parametrize("slots", [1, 3, 8])
def test_every_executor_splits_the_ceilings_alike(slots: int) -> None:
    options = EngineOptions(rate=900.0, concurrency=20, timeout=0.5, retries=1)
    for executor in executors(slots):
        each = executor.share(options)
        assert each.rate is not None
        assert each.concurrency is not None
        # Equal shares, rounded down: together never past the scan's ceilings.
        assert each.rate == pytest.approx(900.0 / slots), type(executor).__name__
        assert each.concurrency == max(1, 20 // slots), type(executor).__name__
        assert each.rate * slots <= 900.0 + 1e-9
        assert each.concurrency * slots <= 20
        assert (each.timeout, each.retries) == (0.5, 1)  # only the ceilings are split


def test_no_ceiling_stays_no_ceiling() -> None:
    for executor in executors(4):
        assert executor.share(EngineOptions()) == EngineOptions()


def test_local_executor_forks_only_for_large_scans() -> None:
    assert local_executor(10).slots == 1
    assert local_executor(10, 3).slots == 3  # asked for
    assert local_executor(MIN_PROBES_PER_PROCESS - 1).slots == 1
    # A large scan: every core this process may run on, busy or not.
    cores = len(os.sched_getaffinity(0))
    assert local_executor(100 * MIN_PROBES_PER_PROCESS).slots == cores


@pytest.mark.parametrize("slots", [1, 2, 3])
async def test_sharded_streams_every_probe_once(
    slots: int, listeners: list[Listener], free_ports: list[int]
) -> None:
    v4 = [ls for ls in listeners if ":" not in ls.host]
    ports = sorted({ls.port for ls in v4} | set(free_ports))
    hosts = sorted({ls.host for ls in v4})
    probes = [(Target(address=host), port) for host in hosts for port in ports]
    executor = Sharded(slots)
    options = executor.share(EngineOptions(concurrency=64))

    def engine(plan: Iterator[tuple[Target, int]]) -> Batches:
        return run_socket_engine(plan, ProbeKind.TCP_CONNECT, options)

    found: list[PortResult] = []
    async for batch in executor.stream(engine, iter(probes), transport="tcp", names=None):
        found.extend(batch.results)
        assert not batch.counts  # nothing asked for counts
    assert sorted((r.host, r.port) for r in found) == sorted(
        (t.address, p) for t, p in probes
    )  # every probe, once
    assert {(r.host, r.port) for r in found if r.state is PortState.OPEN} == {
        (ls.host, ls.port) for ls in v4
    }


async def test_forked_results_wait_in_their_pipes_not_in_memory() -> None:
    # A forked process that makes results faster than they are taken blocks on its
    # pipe: at most QUEUED_MESSAGES of its batches (and what the pipe holds) wait in
    # this process, however far ahead it could run.
    produced = mmap.mmap(-1, 8)  # shared with the forked process: its batch count
    total, rows = 120, 400

    async def fast(_probes: Iterator[tuple[Target, int]]) -> Batches:
        for index in range(total):
            results = [
                PortResult(host="192.0.2.1", port=1 + (index * rows + i) % 65535,
                           transport="tcp", state=PortState.CLOSED, reason="conn-refused")
                for i in range(rows)
            ]  # fmt: skip
            yield ResultBatch(results)
            struct.pack_into("q", produced, 0, index + 1)

    async def nothing(_probes: Iterator[tuple[Target, int]]) -> Batches:
        return
        yield  # an async generator that yields nothing

    taken = 0
    ahead = []
    probes = iter([(Target(address="192.0.2.1"), 1)] * 4)
    async for batch in Sharded(2).stream(
        fast, probes, transport="tcp", names=None, own_engine=nothing
    ):
        if batch.results:
            taken += 1
            ahead.append(struct.unpack_from("q", produced, 0)[0] - taken)
            await asyncio.sleep(0.005)  # a slow consumer (a report, identification)
    assert taken == total
    # Beside those queued here, one read of the pipe (64 KiB) may add what it holds,
    # the pipe holds that much again (Linux's default size), and one more message may
    # be on its way in the forked process.
    sample = [(r, None, 1, "closed", "conn-refused", None) for r in ["192.0.2.1"] * rows]
    size = len(pickle.dumps(("rows", (sample, [])), protocol=pickle.HIGHEST_PROTOCOL))
    in_pipe = -(-65536 // size)
    assert max(ahead) <= QUEUED_MESSAGES + 2 * in_pipe + 1, (ahead, in_pipe)
    assert max(ahead) < total // 2  # far from all of them
