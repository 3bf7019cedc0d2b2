"""The connect and UDP engines against real listeners on loopback."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from portkit._errors import PortSpecError, TargetError
from portkit._rlimit import raise_fd_limit
from portkit.scan._engine import ProbeKind, window_size
from portkit.scan._model import Batches, PortResult, PortState, ResultBatch
from portkit.scan._scan import scan

from .conftest import Listener, drop_tcp_port, needs_root, run_in_namespace


async def collect(results: AsyncIterator[PortResult]) -> list[PortResult]:
    return [r async for r in results]


def opened(results: list[PortResult]) -> set[tuple[str, int]]:
    return {(r.host, r.port) for r in results if r.state is PortState.OPEN}


async def test_open_and_closed_on_several_loopback_hosts(
    listeners: list[Listener], free_ports: list[int]
) -> None:
    v4 = [ls for ls in listeners if ":" not in ls.host]
    ports = sorted({ls.port for ls in v4} | set(free_ports))
    spec = ",".join(map(str, ports))
    results = await collect(scan(["127.0.0.2-3"], spec, timeout=2.0))
    assert len(results) == 2 * len(ports)  # every (host, port) exactly once
    assert opened(results) == {(ls.host, ls.port) for ls in v4}
    for r in results:
        if (r.host, r.port) not in opened(results):
            assert r.state is PortState.CLOSED
            assert r.reason in ("conn-refused", "self-connect")
        assert r.transport == "tcp"


async def test_ipv6_loopback(listeners: list[Listener]) -> None:
    v6 = next(ls for ls in listeners if ls.host == "::1")
    results = await collect(scan("::1", f"{v6.port},{v6.port + 1}"))
    by_port = {r.port: r.state for r in results}
    assert by_port == {v6.port: PortState.OPEN, v6.port + 1: PortState.CLOSED}


async def test_expected_name_comes_from_the_registry() -> None:
    results = await collect(scan("127.0.0.1", "T:443"))
    assert results[0].expected == "https"


RUN_TWICE = """
import asyncio, json, socket, sys
from portkit.scan import scan
async def main():
    socks = []
    for host, port in [("127.0.0.2", 22), ("127.0.0.2", 1999), ("127.0.0.3", 80)]:
        s = socket.socket(); s.bind((host, port)); s.listen(8); socks.append(s)
    runs = []
    for options in json.loads(sys.argv[1]):
        found = [(r.host, r.port, r.state.value, r.expected)
                 async for r in scan(["127.0.0.2", "127.0.0.3"], sys.argv[2], **options)]
        runs.append(sorted(found))
    print(json.dumps(runs))
asyncio.run(main())
"""


@needs_root
@pytest.mark.root
def test_results_are_identical_run_to_run(netns: str) -> None:
    variants = [{}, {"concurrency": 64}, {"processes": 2}, {"processes": 3, "rate": 50000}]
    runs = json.loads(run_in_namespace(netns, RUN_TWICE, json.dumps(variants), "1-9000"))
    assert len(runs[0]) == 2 * 9000
    opened = [(h, p) for h, p, state, _name in runs[0] if state == "open"]
    assert opened == [("127.0.0.2", 22), ("127.0.0.2", 1999), ("127.0.0.3", 80)]
    for other in runs[1:]:
        assert other == runs[0]


COUNTED = """
import asyncio, collections, json, socket, sys
from portkit.scan._scan import plan_scan, scan_batches
async def main():
    socks = []
    for host, port in [("127.0.0.2", 22), ("127.0.0.2", 1999), ("127.0.0.3", 80)]:
        s = socket.socket(); s.bind((host, port)); s.listen(8); socks.append(s)
    runs = []
    for processes in (1, 2):
        plan = await plan_scan(["127.0.0.2", "127.0.0.3"], "1-9000", processes=processes)
        opened, made, counted = [], collections.Counter(), collections.Counter()
        async for batch in scan_batches(plan, count_after=int(sys.argv[1])):
            for r in batch.results:
                if r.state.value == "open":
                    opened.append([r.host, r.port])
                else:
                    made[r.host, r.state.value, r.reason] += 1
            for (host, transport, state, reason), n in batch.counts.items():
                counted[host, transport, state.value, reason] += n
        runs.append({"opened": sorted(opened), "made": sorted(made.items()),
                     "counted": sorted(counted.items())})
    print(json.dumps(runs))
asyncio.run(main())
"""


@needs_root
@pytest.mark.root
def test_closed_ports_past_the_limit_come_as_counts(netns: str) -> None:
    # The CLI's reports only count a host's closed ports past their listing limit: the
    # connect engine (and each forked process of it) hands those over as counts.
    runs = json.loads(run_in_namespace(netns, COUNTED, "5"))
    for processes, run in zip((1, 2), runs, strict=True):
        assert run["opened"] == [["127.0.0.2", 22], ["127.0.0.2", 1999], ["127.0.0.3", 80]]
        made = {tuple(key): n for key, n in run["made"]}
        counted = {tuple(key): n for key, n in run["counted"]}
        for host, opens in (("127.0.0.2", 2), ("127.0.0.3", 1)):
            rows = made.get((host, "closed", "conn-refused"), 0)
            # At most 5 closed results per host from each process, the rest counted.
            assert 5 <= rows <= 5 * processes, (processes, made)
            assert rows + counted[(host, "tcp", "closed", "conn-refused")] == 9000 - opens
        assert set(counted) == {
            ("127.0.0.2", "tcp", "closed", "conn-refused"),
            ("127.0.0.3", "tcp", "closed", "conn-refused"),
        }


async def test_hostname_is_carried_on_results(listeners: list[Listener]) -> None:
    results = await collect(scan("localhost", "1", tcp=True))
    assert {r.hostname for r in results} == {"localhost"}


def ephemeral_range() -> tuple[int, int]:
    text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text(encoding="ascii")
    low, high = map(int, text.split())
    return low, high


SELF_CONNECT = """
import asyncio, sys
from portkit.scan import scan
async def main():
    low, high = sys.argv[1], sys.argv[2]
    found = [r async for r in scan("127.0.0.4", f"{low}-{high}", timeout=2.0)]
    print(len(found), sum(r.state.value == "open" for r in found),
          sum(r.reason == "self-connect" for r in found))
asyncio.run(main())
"""


@needs_root
@pytest.mark.root
def test_no_false_open_from_self_connect(netns: str) -> None:
    # Scan the whole ephemeral range of an address where nothing listens: a
    # self-connect (source port == destination port) must not show up as open.
    low, high = ephemeral_range()
    total, opened, _self_connects = run_in_namespace(
        netns, SELF_CONNECT, str(low), str(high)
    ).split()
    assert int(total) == high - low + 1
    assert int(opened) == 0


async def test_full_backlog_is_not_reported_closed() -> None:
    # listen(0) holds one connection in the accept queue; once it is full the kernel
    # drops further SYNs, so the port stays silent: filtered, after the retries.
    server = socket.socket()
    server.bind(("127.0.0.5", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers: list[socket.socket] = []
    try:
        for _ in range(2):
            c = socket.socket()
            c.setblocking(False)
            c.connect_ex(("127.0.0.5", port))
            fillers.append(c)
        results = await collect(scan("127.0.0.5", f"{port},{port + 1}", timeout=0.2, retries=1))
        by_port = {r.port: r for r in results}
        assert by_port[port].state in (PortState.FILTERED, PortState.OPEN)
        assert by_port[port].state is not PortState.CLOSED
        if by_port[port].state is PortState.FILTERED:
            assert by_port[port].reason == "no-response"
    finally:
        for c in fillers:
            c.close()
        server.close()


async def test_closing_the_generator_early_closes_sockets(listeners: list[Listener]) -> None:
    gen = scan("127.0.0.2", "1-20000")
    async for _ in gen:
        break
    await gen.aclose()  # no ResourceWarning (filterwarnings=error) means all closed


async def test_udp_closed_and_open(free_ports: list[int]) -> None:
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.2", 0))
    port = server.getsockname()[1]
    import threading

    def echo() -> None:
        data, peer = server.recvfrom(2048)
        server.sendto(b"pong" + data[:4], peer)

    thread = threading.Thread(target=echo)
    thread.start()
    try:
        results = await collect(
            scan("127.0.0.2", f"U:{port},{free_ports[0]}", timeout=0.5, retries=1)
        )
    finally:
        thread.join(timeout=10)
        server.close()
    by_port = {r.port: r for r in results}
    assert by_port[port].state is PortState.OPEN
    assert by_port[port].reason == "udp-response"
    assert by_port[free_ports[0]].state is PortState.CLOSED
    assert by_port[free_ports[0]].reason == "port-unreach"


async def test_udp_silence_is_open_filtered() -> None:
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.2", 0))  # bound but never answers
    try:
        port = server.getsockname()[1]
        results = await collect(scan("127.0.0.2", f"U:{port}", timeout=0.2, retries=1))
    finally:
        server.close()
    assert results[0].state is PortState.OPEN_FILTERED
    assert results[0].reason == "no-response"


async def test_rate_limited_scan_still_complete() -> None:
    results = await collect(scan("127.0.0.2", "1-50", rate=2000))
    assert sorted(r.port for r in results) == list(range(1, 51))


def test_fd_limit_is_raised_and_window_fits() -> None:
    import resource

    limit = raise_fd_limit()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert soft == limit
    assert soft == hard or hard == resource.RLIM_INFINITY
    assert 1 <= window_size(10**9) < limit
    assert window_size(5) == 5


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"rate": 0}, PortSpecError),
        ({"timeout": -1}, PortSpecError),
        ({"concurrency": 0}, PortSpecError),
        ({"retries": -1}, PortSpecError),
        ({"exclude": ["127.0.0.0/8"]}, TargetError),
    ],
)
async def test_bad_options_raise_before_sending(kwargs: dict[str, object], error: type) -> None:
    with pytest.raises(error):
        await collect(scan("127.0.0.2", "80", **kwargs))  # type: ignore[arg-type]


@needs_root
@pytest.mark.root
def test_dropped_port_is_filtered_in_bounded_time(netns: str) -> None:
    drop_tcp_port(netns, 9)
    script = textwrap.dedent(
        """
        import asyncio, socket, sys
        from portkit.scan import scan
        async def main():
            server = socket.socket(); server.bind(("127.0.0.1", 7)); server.listen(8)
            async for r in scan("127.0.0.1", "7,9,10", timeout=0.3, retries=1):
                print(r.port, r.state.value, r.reason)
            server.close()
        asyncio.run(main())
        """
    )
    proc = subprocess.run(
        ["ip", "netns", "exec", netns, sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        env={"PYTHONPATH": ":".join(sys.path)},
    )
    lines = sorted(proc.stdout.split("\n")[:-1])
    assert lines == ["10 closed conn-refused", "7 open syn-ack", "9 filtered no-response"]


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_expected_names_table_matches_the_registry(transport: str) -> None:
    from portkit.registry import default_registry
    from portkit.scan._names import expected_names

    registry = default_registry()
    names = expected_names(transport)
    assert len(names) == 65536
    # Every 7th port, plus the well-known range in full: same answer as the registry.
    for port in [*range(0, 1024), *range(1024, 65536, 7)]:
        assert names[port] == registry.service_name(port, transport), port
    few = expected_names(transport, (22, 53, 443, 40000))
    assert [few[p] for p in (22, 53, 443, 40000)] == [names[p] for p in (22, 53, 443, 40000)]
    assert few[80] is None  # not asked for


async def test_sharded_scan_finds_the_listeners(listeners: list[Listener]) -> None:
    # Equality over large ranges is checked in a namespace (run to run, above); here
    # the sharded engine on the machine's loopback, on ports known to be ours.
    v4 = sorted({ls.port for ls in listeners if ":" not in ls.host})
    spec = ",".join(str(p) for p in v4)
    two = await collect(scan(["127.0.0.2", "127.0.0.3"], spec, processes=2))
    assert len(two) == 2 * len(v4)
    assert opened(two) == {(ls.host, ls.port) for ls in listeners if ":" not in ls.host}


def children() -> dict[int, str]:
    """This process's child processes, zombies included: pid -> state letter."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # exited while we looked
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        state, ppid = stat.rpartition(")")[2].split()[:2]
        if int(ppid) == os.getpid():
            found[int(entry.name)] = state
    return found


async def test_closing_a_sharded_scan_early_stops_the_workers() -> None:
    before = children()
    gen = scan("127.0.0.2", "1-65535", processes=2, rate=5000)
    async for _ in gen:
        break
    workers = {pid: state for pid, state in children().items() if pid not in before}
    assert len(workers) == 1, workers  # two processes: this one and one forked worker
    await gen.aclose()
    # Killed and reaped: a child that is gone from /proc left no zombie ("Z") behind.
    left = {pid: state for pid, state in children().items() if pid in workers}
    assert left == {}, left


def test_process_count() -> None:
    from portkit.scan._shard import MIN_PROBES_PER_PROCESS, process_count

    assert process_count(10) == 1
    assert process_count(10, 3) == 3
    assert 1 <= process_count(100 * MIN_PROBES_PER_PROCESS) <= len(os.sched_getaffinity(0))


DNS_IN_NAMESPACE = """
import asyncio, shutil, subprocess, sys
from portkit.scan import scan
async def main():
    server = subprocess.Popen(
        ["dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", "--port=53",
         "--listen-address=127.0.0.1", "--bind-interfaces", "--address=/pk.test/127.0.0.9",
         "--pid-file=", "--user=root"],
        stderr=subprocess.PIPE, text=True)
    try:
        # Ready signal: dnsmasq logs "started" once its sockets are bound.
        for line in server.stderr:
            if "started" in line:
                break
        async for r in scan("127.0.0.1", "U:53,54,123", timeout=0.5, retries=1):
            print(r.port, r.state.value, r.reason)
    finally:
        server.terminate()
        server.wait()
asyncio.run(main())
"""


@needs_root
@pytest.mark.root
def test_udp_dns_probe_gets_an_answer_from_dnsmasq(netns: str) -> None:
    if shutil.which("dnsmasq") is None:
        pytest.skip("needs dnsmasq (dnsmasq-base) as a real DNS server")
    lines = sorted(run_in_namespace(netns, DNS_IN_NAMESPACE).splitlines())
    # dnsmasq answers our DNS query: open; nothing on 54 and 123: ICMP, closed.
    assert lines == ["123 closed port-unreach", "53 open udp-response", "54 closed port-unreach"]


def test_share_splits_the_ceilings_and_never_exceeds_them() -> None:
    from portkit.scan._engine import EngineOptions

    options = EngineOptions(rate=1000.0, concurrency=10, timeout=0.5)
    assert options.share(1) is options
    shared = options.share(3)
    assert shared.rate is not None
    assert shared.rate * 3 == pytest.approx(1000.0)
    assert shared.concurrency == 3  # 3 x 3 <= 10
    assert shared.timeout == 0.5
    assert EngineOptions().share(4) == EngineOptions()  # no ceilings: none made up


async def test_forked_processes_hold_none_of_the_callers_descriptors() -> None:
    # Each forked scan process reports the files it holds open; the caller's marker
    # socket (standing for its event loop's epoll set and sockets) must not be one.
    from portkit.scan._shard import sharded
    from portkit.scan._targets import Target

    async def report_descriptors(
        probes: Iterator[tuple[Target, int]],
    ) -> Batches:
        held = []
        for name in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):
                info = os.stat(f"/proc/self/fd/{name}")
                held.append(f"{info.st_dev}:{info.st_ino}")
        yield ResultBatch(
            [
                PortResult(
                    host=target.address,
                    port=port,
                    transport="tcp",
                    state=PortState.CLOSED,
                    reason=" ".join(held),
                )
                for target, port in probes
            ]
        )

    marker, peer = socket.socketpair()  # stands for the event loop's sockets
    with marker, peer:
        info = os.fstat(marker.fileno())
        mark = f"{info.st_dev}:{info.st_ino}"
        probes = iter([(Target(address="127.0.0.1"), port) for port in (1, 2, 3, 4)])
        results = [
            r
            async for batch in sharded(
                report_descriptors,
                probes,
                2,
                transport="tcp",
                names=None,
                own_engine=report_descriptors,
            )
            for r in batch.results
        ]
    assert sorted(r.port for r in results) == [1, 2, 3, 4]
    here = [r for r in results if r.port in (1, 3)]  # this process took every other probe
    forked = [r for r in results if r.port in (2, 4)]
    assert all(mark in r.reason.split() for r in here)  # the check can see the marker
    assert not any(mark in r.reason.split() for r in forked)


async def test_udp_datagrams_are_the_ports_probe_then_the_next_ones() -> None:
    # CoAP's port: its request goes first (the registry names the port), then, one per
    # re-send, the probes that come after it. Nothing answers (a socket that only reads).
    from portkit.proto import udp_payload

    port = 5683
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with silent:
        try:
            silent.bind(("127.0.0.4", port))
        except OSError as exc:
            pytest.skip(f"127.0.0.4:{port}/udp is taken here: {exc}")
        results = await collect(scan("127.0.0.4", f"U:{port}", timeout=0.05, retries=2))
        silent.setblocking(False)
        got = []
        with contextlib.suppress(BlockingIOError):
            while True:
                got.append(silent.recv(65536))
    assert [(r.port, r.state) for r in results] == [(port, PortState.OPEN_FILTERED)]
    assert got == [udp_payload("coap", attempt, "127.0.0.4") for attempt in range(3)]
    assert got[0].startswith(b"@\x01")  # a CoAP GET (RFC 7252 section 3), not a generic one


async def test_tcp_sockets_share_one_source_port_and_keep_it(free_ports: list[int]) -> None:
    from portkit.scan._engine import _SocketTransport
    from portkit.scan._schedule import Policy, ProbeScheduler

    scheduler: ProbeScheduler[int] = ProbeScheduler(iter([]), Policy(), 0.0)
    transport = _SocketTransport(ProbeKind.TCP_CONNECT, scheduler)
    try:
        one = transport._tcp_socket(socket.AF_INET)
        two = transport._tcp_socket(socket.AF_INET)
        with one, two:
            port = one.getsockname()[1]
            assert port != 0
            assert two.getsockname()[1] == port  # one source port for the scan
            # Refused, the socket is unconnected again but still holds the port: the
            # next connect from it needs no new one.
            for closed in free_ports[:3]:
                one.setblocking(True)
                assert one.connect_ex(("127.0.0.2", closed)) == errno.ECONNREFUSED
                assert one.getsockname()[1] == port
    finally:
        transport.close()


async def test_plan_interleaves_ports_across_each_host_group() -> None:
    from portkit.scan._scan import HOST_GROUP, plan_scan

    plan = await plan_scan(["127.0.0.1"], "1-3")
    assert [(t.address, p) for t, p in plan.probes("tcp")] == [("127.0.0.1", p) for p in (1, 2, 3)]
    # A group of 256 hosts, then a group of one: ports interleaved within each group.
    plan = await plan_scan(["10.0.0.0/24", "10.0.1.0"], "7,9")
    pairs = [(t.address, p) for t, p in plan.probes("tcp")]
    first = [f"10.0.0.{i}" for i in range(HOST_GROUP)]
    assert pairs == [(h, 7) for h in first] + [(h, 9) for h in first] + [
        ("10.0.1.0", 7),
        ("10.0.1.0", 9),
    ]


async def test_results_come_in_bounded_batches_when_every_port_is_refused_at_once() -> None:
    # Loopback refuses before connect returns: no probe is ever outstanding, so the
    # window does not bound a launch; the batches must still be small (bounded memory).
    from portkit.scan._drive import READY_CAP
    from portkit.scan._engine import EngineOptions, run_socket_engine
    from portkit.scan._targets import Target

    probes = ((Target(address="127.0.0.2"), port) for port in range(40000, 52000))
    batches = run_socket_engine(probes, ProbeKind.TCP_CONNECT, EngineOptions())
    sizes = [len(batch.results) async for batch in batches]
    assert sum(sizes) == 12000
    assert max(sizes) <= READY_CAP
