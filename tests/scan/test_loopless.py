"""Scans without an event loop: the runner's waits, refusals and Ctrl-C, and the
engines under it giving what they give under asyncio."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from bench._netns import namespace

from portkit.results import PortState
from portkit.scan._engine import EngineOptions, ProbeKind, run_socket_engine
from portkit.scan._loopless import Cancelled, Wait, run_loopless
from portkit.scan._targets import Target


@pytest.fixture
def ports() -> Iterator[tuple[int, int]]:
    """An open port and a closed one on 127.0.0.2."""
    server = socket.socket()
    server.bind(("127.0.0.2", 0))
    server.listen(4)
    spare = socket.socket()
    spare.bind(("127.0.0.2", 0))  # bound, never listening: refused
    try:
        yield server.getsockname()[1], spare.getsockname()[1]
    finally:
        server.close()
        spare.close()


async def _states(open_port: int, closed_port: int) -> dict[int, PortState]:
    host = Target(address="127.0.0.2")
    probes = iter([(host, open_port), (host, closed_port)])
    options = EngineOptions(timeout=1.0, retries=1)
    return {
        r.port: r.state
        async for batch in run_socket_engine(probes, ProbeKind.TCP_CONNECT, options)
        for r in batch.results
    }


def test_the_connect_engine_finds_the_same_without_an_event_loop(
    ports: tuple[int, int],
) -> None:
    open_port, closed_port = ports
    loopless = run_loopless(_states(open_port, closed_port))
    with_loop = asyncio.run(_states(open_port, closed_port))
    assert loopless == with_loop == {open_port: PortState.OPEN, closed_port: PortState.CLOSED}


def test_a_wait_ends_when_its_descriptor_is_readable() -> None:
    left, right = socket.socketpair()

    async def reader() -> bytes:
        await Wait([left.fileno()], None)  # no time limit: only the data can end it
        return left.recv(16)

    threading.Timer(0.05, right.send, (b"ping",)).start()
    try:
        assert run_loopless(reader()) == b"ping"
    finally:
        left.close()
        right.close()


def test_a_wait_never_ends_before_its_delay() -> None:
    async def sleeper() -> float:
        start = time.monotonic()
        await Wait([], 0.05)
        return time.monotonic() - start

    assert run_loopless(sleeper()) >= 0.05


def test_what_the_runner_cannot_wait_for_is_refused_inside() -> None:
    class Foreign:
        def __await__(self) -> Iterator[str]:
            yield "a future of some loop"

    async def waits_on_a_foreign_thing() -> str:
        try:
            await Foreign()  # type: ignore[misc]
        except RuntimeError as exc:
            return str(exc)
        return "not refused"

    assert "cannot wait for 'a future of some loop'" in run_loopless(waits_on_a_foreign_thing())


def _interrupt_soon() -> None:
    threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGINT)).start()


@pytest.mark.skipif(
    signal.getsignal(signal.SIGINT) is not signal.default_int_handler,
    reason="needs Python's own Ctrl-C handler in this process",
)
def test_ctrl_c_is_thrown_in_at_the_wait_and_the_handler_restored() -> None:
    async def stops_and_reports() -> str:
        try:
            await Wait([], None)  # forever, but for Ctrl-C
        except Cancelled:
            return "stopped"
        return "went on"

    _interrupt_soon()
    assert run_loopless(stops_and_reports()) == "stopped"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.skipif(
    signal.getsignal(signal.SIGINT) is not signal.default_int_handler,
    reason="needs Python's own Ctrl-C handler in this process",
)
def test_ctrl_c_let_through_comes_out_as_keyboard_interrupt() -> None:
    closed = []

    async def ignores_it() -> None:
        try:
            await Wait([], None)
        finally:
            closed.append(True)

    _interrupt_soon()
    with pytest.raises(KeyboardInterrupt):
        run_loopless(ignores_it())
    assert closed == [True]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.timeout(20)
def test_waits_on_descriptors_closed_and_renumbered_between_them() -> None:
    # One scan runs its TCP engine, then its UDP engine, each with an epoll descriptor
    # of its own: the second may reuse the first's number once that is closed.
    async def two_waits() -> list[bytes]:
        got = []
        for _ in range(2):
            left, right = socket.socketpair()
            with left, right:
                threading.Timer(0.05, right.send, (b"ping",)).start()
                await Wait([left.fileno()], None)  # only the data can end it
                got.append(left.recv(16))
        return got

    assert run_loopless(two_waits()) == [b"ping", b"ping"]


_RESOLVE = """
import asyncio, json
from portkit.scan._loopless import run_loopless
from portkit.scan._targets import iter_targets, parse_targets, resolve_targets

def found(specs):
    return [[t.address, t.hostname] for t in iter_targets(specs)]

several = parse_targets(["alpha.portkit.test", "beta.portkit.test", "gamma.portkit.test", "127.0.0.9"])
one = parse_targets(["beta.portkit.test"])
print(json.dumps([
    found(run_loopless(resolve_targets(several))),
    found(asyncio.run(resolve_targets(several))),
    found(run_loopless(resolve_targets(one))),
]))
"""


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create a network namespace")
def test_names_resolve_the_same_without_an_event_loop() -> None:
    # A namespace of its own whose hosts file names the targets and whose resolver is
    # unreachable: the lookups never leave it.
    with namespace("pk-loopless-", loopback=False) as name:
        etc = Path("/etc/netns") / name  # `ip netns exec` bind-mounts files found here
        etc.mkdir(parents=True)
        try:
            (etc / "resolv.conf").write_text("nameserver 127.0.0.1\n", encoding="ascii")
            (etc / "hosts").write_text(
                "127.0.0.11 alpha.portkit.test\n127.0.0.12 beta.portkit.test\n"
                "127.0.0.13 gamma.portkit.test\n127.0.0.14 gamma.portkit.test\n",
                encoding="ascii",
            )
            done = subprocess.run(
                ["ip", "netns", "exec", name, sys.executable, "-c", _RESOLVE],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
                env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")},
            )
        finally:
            shutil.rmtree(etc)
    assert done.returncode == 0, done.stderr
    loopless, with_loop, one = json.loads(done.stdout)
    assert loopless == with_loop  # the same addresses, in the same order
    assert sorted(loopless) == [
        ["127.0.0.11", "alpha.portkit.test"],
        ["127.0.0.12", "beta.portkit.test"],
        ["127.0.0.13", "gamma.portkit.test"],
        ["127.0.0.14", "gamma.portkit.test"],
        ["127.0.0.9", None],
    ]
    assert one == [["127.0.0.12", "beta.portkit.test"]]
