"""The one engine loop with a stand-in transport: what the loop itself owes."""

from __future__ import annotations

import asyncio

import pytest

from portkit.scan._drive import drive
from portkit.scan._model import CountKey, PortState
from portkit.scan._schedule import Policy, ProbeScheduler
from portkit.scan._targets import Target

HOST = Target(address="127.0.0.1")  # nothing is sent: the transport is a stand-in


class Refusing:
    """A transport that sends nothing: every probe it takes is closed at once.

    With ``cancel`` it takes nothing, and cancels its scan the first time it is asked to
    send, as Ctrl-C would while the loop is busy.
    """

    transport = "tcp"

    def __init__(self, scheduler: ProbeScheduler[int], *, cancel: bool = False) -> None:
        self.scheduler = scheduler
        self.cancel = cancel
        self.closed = False

    def descriptors(self) -> list[int]:
        return []

    def receive(self, now: float) -> None:
        return None

    def expired(self, keys: list[int]) -> None:
        return None

    def launch(self, now: float, most: int | None) -> None:
        if self.cancel:
            self.cancel = False
            task = asyncio.current_task()
            assert task is not None
            task.cancel()
            return
        _attempt, probes = self.scheduler.take(now, most)
        for target, port in probes:
            self.scheduler.finish_now(target, port, PortState.CLOSED, "conn-refused", 0.001)

    def take_counts(self) -> dict[CountKey, int] | None:
        return None

    def close(self) -> None:
        self.closed = True


class DueNow(ProbeScheduler[int]):
    """A scheduler whose next timer is always due at once (a deadline just reached)."""

    def wake_at(self, now: float) -> float | None:
        return now


async def test_a_cancel_just_before_a_timer_due_now_stops_the_scan() -> None:
    scheduler = DueNow(iter([(HOST, 1)]), Policy(), 0.0)
    transport = Refusing(scheduler, cancel=True)

    async def consume() -> None:
        async for _batch in drive(transport, scheduler):
            pass

    task = asyncio.ensure_future(consume())
    done, _ = await asyncio.wait([task], timeout=10)  # a guard: the bug made it spin
    if not done:
        task.cancel()
    assert done, "the scan went on after its cancellation"
    assert task.cancelled()
    assert transport.closed


async def test_rows_come_out_once_and_the_transport_is_closed() -> None:
    scheduler: ProbeScheduler[int] = ProbeScheduler(iter([(HOST, 7)]), Policy(), 0.0)
    transport = Refusing(scheduler)
    batches = [b async for b in drive(transport, scheduler, [None] * 7 + ["echo"])]
    assert [(r.port, r.state, r.expected) for b in batches for r in b.results] == [
        (7, PortState.CLOSED, "echo")
    ]
    assert transport.closed


@pytest.mark.parametrize("names", [None, ["x"] * 65536])
async def test_nothing_planned_nothing_yielded(names: list[str | None] | None) -> None:
    scheduler: ProbeScheduler[int] = ProbeScheduler(iter([]), Policy(), 0.0)
    transport = Refusing(scheduler)
    assert [b async for b in drive(transport, scheduler, names)] == []
    assert transport.closed
