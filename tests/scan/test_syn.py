"""The SYN engine: packets, cookies, privileges, and real scans as root."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portkit.scan._model import PortResult, PortState
from portkit.scan._scan import scan
from portkit.scan._synwire import (
    CookieJar,
    base_sum,
    base_sum6,
    fast_syn_packet,
    syn_packet,
    write_syn,
)

from .conftest import Listener, drop_tcp_port, needs_root

addresses = st.binary(min_size=4, max_size=4)
ports = st.integers(0, 65535)


def checksum_ok(src: bytes, dst: bytes, segment: bytes) -> bool:
    # RFC 1071: the one's complement sum over pseudo-header and segment is 0xFFFF.
    data = src + dst + bytes([0, socket.IPPROTO_TCP]) + len(segment).to_bytes(2, "big") + segment
    total = sum(int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total == 0xFFFF


@given(addresses, addresses, ports, ports, st.integers(0, 2**32 - 1))
def test_packet_fields_and_checksum(
    src: bytes, dst: bytes, sport: int, dport: int, seq: int
) -> None:
    packet = syn_packet(src, dst, sport, dport, seq)
    assert len(packet) == 20
    assert int.from_bytes(packet[0:2], "big") == sport
    assert int.from_bytes(packet[2:4], "big") == dport
    assert int.from_bytes(packet[4:8], "big") == seq
    assert packet[13] == 0x02  # SYN only
    assert checksum_ok(src, dst, packet)
    assert fast_syn_packet(base_sum(src, dst, sport), sport, dport, seq) == packet


def checksum6_ok(src: bytes, dst: bytes, segment: bytes) -> bool:
    # RFC 8200 section 8.1: source, destination, 32-bit length, 3 zero bytes, next header.
    pseudo = src + dst + len(segment).to_bytes(4, "big") + bytes(3) + bytes([socket.IPPROTO_TCP])
    data = pseudo + segment
    total = sum(int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total == 0xFFFF


@given(
    st.binary(min_size=16, max_size=16),
    st.binary(min_size=16, max_size=16),
    ports,
    ports,
    st.integers(0, 2**32 - 1),
)
def test_ipv6_syn_checksum(src: bytes, dst: bytes, sport: int, dport: int, seq: int) -> None:
    packet = bytearray(20)
    write_syn(packet, 0, base_sum6(src, dst, sport), sport, dport, seq)
    assert int.from_bytes(packet[2:4], "big") == dport
    assert int.from_bytes(packet[4:8], "big") == seq
    assert checksum6_ok(src, dst, bytes(packet))


@given(addresses, addresses, ports, ports)
def test_cookies_are_keyed_and_stable(src: bytes, dst: bytes, sport: int, dport: int) -> None:
    jar = CookieJar(b"k" * 16)
    assert jar.cookie(src, dst, sport, dport) == CookieJar(b"k" * 16).cookie(src, dst, sport, dport)
    assert 0 <= jar.cookie(src, dst, sport, dport) < 2**32


def test_cookies_differ_between_keys_and_ports() -> None:
    a, b = CookieJar(b"a" * 16), CookieJar(b"b" * 16)
    src, dst = socket.inet_aton("127.0.0.1"), socket.inet_aton("127.0.0.2")
    values = {a.cookie(src, dst, 61000, p) for p in range(1000)}
    assert len(values) > 990  # a table of random words: collisions are rare
    assert (
        sum(a.cookie(src, dst, 61000, p) == b.cookie(src, dst, 61000, p) for p in range(1000)) < 5
    )


def test_without_privilege_one_line_exit_5(tmp_path: Path) -> None:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run the command as an unprivileged user")
    src = Path(__file__).resolve().parents[2] / "src"
    proc = subprocess.run(
        [
            "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
            "--inh-caps=-all", "--bounding-set=-all",
            sys.executable, "-m", "portkit", "scan", "127.0.0.1", "-p", "80", "--syn",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PYTHONPATH": str(src), "HOME": str(tmp_path)},
        cwd=tmp_path,
    )  # fmt: skip
    if "Permission denied" in proc.stderr and "portkit" not in proc.stderr:
        pytest.skip(f"the source tree is not readable by an unprivileged user: {proc.stderr}")
    assert proc.returncode == 5, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "--syn needs root or CAP_NET_RAW" in lines[0]


async def collect(**kwargs: object) -> list[PortResult]:
    return [r async for r in scan(**kwargs)]  # type: ignore[arg-type]


@needs_root
@pytest.mark.root
async def test_syn_scan_finds_listeners(listeners: list[Listener], free_ports: list[int]) -> None:
    v4 = [ls for ls in listeners if ":" not in ls.host]
    spec = ",".join(map(str, sorted({ls.port for ls in v4} | set(free_ports))))
    results = await collect(targets=["127.0.0.2", "127.0.0.3"], ports=spec, syn=True)
    assert {(r.host, r.port) for r in results if r.state is PortState.OPEN} == {
        (ls.host, ls.port) for ls in v4
    }
    closed = [r for r in results if r.state is PortState.CLOSED]
    assert closed
    assert {r.reason for r in closed} == {"reset"}
    assert len(results) == 2 * len(spec.split(","))


@needs_root
@pytest.mark.root
async def test_syn_over_ipv6_loopback(listeners: list[Listener], free_ports: list[int]) -> None:
    v6 = next(ls for ls in listeners if ls.host == "::1")
    spec = ",".join(map(str, sorted({v6.port, *free_ports})))
    results = await collect(targets=["::1"], ports=spec, syn=True)
    by_port = {r.port: (r.state, r.reason) for r in results}
    assert by_port == {
        port: (PortState.OPEN, "syn-ack") if port == v6.port else (PortState.CLOSED, "reset")
        for port in sorted({v6.port, *free_ports})
    }


@needs_root
@pytest.mark.root
async def test_syn_ipv4_and_ipv6_targets_in_one_scan(
    listeners: list[Listener], free_ports: list[int]
) -> None:
    # Probes alternate between the two hosts: every batch mixes the families.
    ports = sorted({ls.port for ls in listeners} | set(free_ports))
    results = await collect(targets=["127.0.0.2", "::1"], ports=",".join(map(str, ports)), syn=True)
    assert len(results) == 2 * len(ports)
    assert {(r.host, r.port) for r in results if r.state is PortState.OPEN} == {
        (ls.host, ls.port) for ls in listeners if ls.host in ("127.0.0.2", "::1")
    }
    assert {r.reason for r in results if r.state is not PortState.OPEN} == {"reset"}


@needs_root
@pytest.mark.root
def test_syn_dropped_port_is_filtered(netns: str) -> None:
    drop_tcp_port(netns, 9)
    script = textwrap.dedent(
        """
        import asyncio, socket
        from portkit.scan import scan
        async def main():
            server = socket.socket(); server.bind(("127.0.0.1", 7)); server.listen(8)
            async for r in scan("127.0.0.1", "7,9,10", syn=True, timeout=0.3, retries=1):
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
    assert sorted(proc.stdout.splitlines()) == [
        "10 closed reset",
        "7 open syn-ack",
        "9 filtered no-response",
    ]


async def _engine_results(
    probes: list[tuple[str, int]], *, batch_size: int, fast: bool, concurrency: int | None
) -> list[tuple[str, int, str, str]]:
    from portkit.scan._engine import EngineOptions
    from portkit.scan._syn import run_syn_engine
    from portkit.scan._targets import Target

    targets = {address: Target(address=address) for address, _port in probes}
    engine = run_syn_engine(
        iter([(targets[address], port) for address, port in probes]),
        EngineOptions(timeout=1.0, retries=2, concurrency=concurrency),
        batch_size=batch_size,
        fast=fast,
    )
    found = [r async for batch in engine for r in batch.results]
    return sorted((r.host, r.port, r.state.value, r.reason) for r in found)


@needs_root
@pytest.mark.root
@pytest.mark.parametrize(
    ("batch_size", "concurrency"),
    [(3, None), (3, 4), (256, None), (16, 16)],
    ids=["small-batches", "window-below-batch", "one-batch", "window-equals-batch"],
)
async def test_engine_same_answers_batched_or_not(
    listeners: list[Listener], free_ports: list[int], batch_size: int, concurrency: int | None
) -> None:
    # Batch and window boundaries, the speed tricks on or off (sendmmsg/recvmmsg,
    # batches built and checked at once, or one call and one check per packet): the
    # same answer for every probe, every time, each probe answered exactly once.
    v4 = [ls for ls in listeners if ":" not in ls.host]
    probes = [(ls.host, ls.port) for ls in v4]
    probes += [(h, p) for h in ("127.0.0.2", "127.0.0.3") for p in free_ports]
    expected = sorted(
        [(ls.host, ls.port, "open", "syn-ack") for ls in v4]
        + [(h, p, "closed", "reset") for h in ("127.0.0.2", "127.0.0.3") for p in free_ports]
    )
    for fast in (True, False, True):
        got = await _engine_results(
            probes, batch_size=batch_size, fast=fast, concurrency=concurrency
        )
        assert got == expected


@needs_root
@pytest.mark.root
@pytest.mark.parametrize("batch_size", [3, 256])
async def test_ipv6_same_answers_fast_or_plain(
    listeners: list[Listener], free_ports: list[int], batch_size: int
) -> None:
    # IPv6 SYNs in batches (sendmmsg) or one sendto each: the same answer per probe.
    v6 = next(ls for ls in listeners if ls.host == "::1")
    probes = [("::1", port) for port in sorted({v6.port, *free_ports})]
    runs = [
        await _engine_results(probes, batch_size=batch_size, fast=fast, concurrency=None)
        for fast in (True, False)
    ]
    assert runs[0] == runs[1]
    assert [(port, state) for _h, port, state, _r in runs[0] if state == "open"] == [
        (v6.port, "open")
    ]
    assert len(runs[0]) == len(probes)


@given(
    st.sampled_from(["tcp", "udp"]),
    st.sampled_from(["127.0.0.1", "10.1.2.3"]),
    ports,
    st.sampled_from(list(PortState)),
    st.sampled_from(["reset", "syn-ack", "no-response"]),
    st.none() | st.just("example.test"),
    st.none() | st.just("http"),
    st.none() | st.floats(0, 10),
)
def test_fast_results_equal_constructed_ones(
    transport: str,
    host: str,
    port: int,
    state: PortState,
    reason: str,
    hostname: str | None,
    expected: str | None,
    rtt: float | None,
) -> None:
    from portkit.scan._names import result_maker

    make = result_maker(transport)
    assert getattr(make, "fast", False)  # the fast maker is the one in use
    made = make(host, port, state, reason, hostname, expected, rtt)
    assert made == result_maker(transport, fast=False)(
        host, port, state, reason, hostname, expected, rtt
    )
    plain = PortResult(
        host=host,
        port=port,
        transport=transport,
        state=state,
        reason=reason,
        hostname=hostname,
        expected=expected,
        rtt=rtt,
    )
    assert made == plain
    assert hash(made) == hash(plain)
    assert repr(made) == repr(plain)
    assert made.identified is None


@needs_root
@pytest.mark.root
async def test_engine_counts_closed_ports_past_the_limit(listeners: list[Listener]) -> None:
    # With count_after, every probe is still accounted for exactly once: as a result
    # or in a count, and only closed ports of a host past that many are counted.
    from portkit.scan._engine import EngineOptions
    from portkit.scan._syn import run_syn_engine
    from portkit.scan._targets import Target

    v4 = [ls for ls in listeners if ls.host == "127.0.0.2"]
    target = Target(address="127.0.0.2")
    ports = sorted({ls.port for ls in v4} | set(range(40000, 42000)))
    engine = run_syn_engine(
        iter([(target, port) for port in ports]),
        EngineOptions(timeout=1.0, retries=2),
        count_after=3,
    )
    found: list[PortResult] = []
    counted: dict[tuple[str, str, PortState, str], int] = {}
    async for batch in engine:
        found.extend(batch.results)  # a batch's results come before its counts
        for key, n in batch.counts.items():
            # Counts come only once that host's closed results were handed over.
            assert sum(r.state is PortState.CLOSED for r in found) >= 3
            counted[key] = counted.get(key, 0) + n
    assert set(counted) <= {("127.0.0.2", "tcp", PortState.CLOSED, "reset")}
    assert counted, "a 2,000-port sweep of one host should have counted closed ports"
    assert len(found) + sum(counted.values()) == len(ports)
    assert len({r.port for r in found}) == len(found)
    assert {r.port for r in found if r.state is PortState.OPEN} >= {ls.port for ls in v4}


@needs_root
@pytest.mark.root
def test_cli_counts_give_the_library_scans_report(
    listeners: list[Listener], tmp_path: Path
) -> None:
    # The CLI (closed ports handed over as counts) reports what the library's
    # per-result scan() fed to the same report reports.
    import asyncio
    import json

    from portkit.cli import main
    from portkit.report import ScanInfo, ScanSummary, make_report

    spec = ",".join(str(ls.port) for ls in listeners if ls.host == "127.0.0.2") + ",40000-41999"
    path = tmp_path / "scan.json"
    assert (
        main(["scan", "127.0.0.2", "-p", spec, "--syn", "-o", "json", "--output", str(path)]) == 0
    )
    via_cli = json.loads(path.read_text())

    async def library() -> str:
        import io

        out = io.StringIO()
        report = make_report("json", out)
        report.begin(ScanInfo(args="", start=0.0, scan_type="syn"))
        async for result in scan(targets=["127.0.0.2"], ports=spec, syn=True):
            report.add([result])
        report.end(ScanSummary(end=0.0, elapsed=0.0))
        return out.getvalue()

    via_library = json.loads(asyncio.run(library()))

    def hosts(document: dict[str, object]) -> object:
        found = document["hosts"]
        assert isinstance(found, list)
        for host in found:
            for port in host["ports"]:
                port["rtt_ms"] = None  # measured: differs run to run
        return found

    assert hosts(via_cli) == hosts(via_library)
    assert via_cli["hosts"][0]["counts"]["tcp/closed"] >= 1900


@needs_root
@pytest.mark.root
@pytest.mark.usefixtures("names_cache")  # cold and warm: the first scan after an install too
async def test_counts_pass_through_identification(listeners: list[Listener]) -> None:
    # With detect, open ports wait for identification; the counts of the closed ports
    # must still reach the caller, and every probe is accounted for once.
    from portkit.scan._model import Identification
    from portkit.scan._scan import plan_scan, scan_batches

    v4 = sorted(ls.port for ls in listeners if ls.host == "127.0.0.2")
    spec = ",".join(map(str, v4)) + ",40000-41999"
    plan = await plan_scan(["127.0.0.2"], spec, syn=True)
    asked: list[int] = []

    async def identify(host: str, port: int, *, expected: str | None = None) -> Identification:
        asked.append(port)
        return Identification(service="test")

    found: list[PortResult] = []
    counted = 0
    async for batch in scan_batches(plan, detect=identify, count_after=26):
        found.extend(batch.results)
        counted += sum(batch.counts.values())
    assert counted > 0
    assert len(found) + counted == plan.probe_count
    opened = sorted(r.port for r in found if r.state is PortState.OPEN)
    assert sorted(asked) == opened
    assert set(v4) <= set(opened)
    assert all(r.identified == Identification(service="test") for r in found if r.port in v4)


@needs_root
@pytest.mark.root
def test_ipv6_reply_filter_keeps_other_tcp_traffic_in_the_kernel() -> None:
    import select as select_module

    from portkit.scan._syn import _raw_socket6

    filtered = _raw_socket6(61999)
    assert filtered is not None
    unfiltered = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_TCP)
    server = socket.socket(socket.AF_INET6)
    try:
        server.bind(("::1", 0))
        server.listen(1)
        # A whole handshake on ::1: SYN, SYN-ACK, ACK, none of them to port 61999.
        client = socket.create_connection(("::1", server.getsockname()[1]), timeout=5)
        client.close()
        # The control sees those segments (the ready signal that they were sent) ...
        assert select_module.select([unfiltered], [], [], 5)[0]
        # ... and the filtered socket, open since before them, does not.
        with pytest.raises(BlockingIOError):
            filtered.recv(65535)
    finally:
        server.close()
        unfiltered.close()
        filtered.close()
