"""Benchmark: ``portkit scan`` against nmap, side by side, in a namespace of its own.

Creates a network namespace ``pk-scan-bench-*`` (deleted afterwards, even on failure;
``PORTKIT_BENCH_NETNS_PREFIX`` replaces the ``pk-scan-bench`` prefix)
with about 20 listeners on assorted ports across 16 loopback addresses, then runs
each scenario for both tools, alternating which goes first, for several rounds:

1. every TCP port of one host, connect scan:  portkit scan -p-        vs nmap -sT -p- -n -Pn
2. the same with raw SYN packets:             portkit scan -p- --syn  vs nmap -sS -p- -n -Pn
3. 16 hosts x 1,000 ports, connect scan:      portkit scan -p 1-1000  vs nmap -sT -p 1-1000

Every run's open set must equal the listeners (and so nmap's); any difference stops
the benchmark. Reports the median wall time of each command (process start to exit,
so both pay their start-up) and its CPU time (user + system, children included), each
with portkit's figure as a fraction of nmap's. On a shared machine the wall times move
with everyone else's load; the CPU times much less.

Needs root (namespaces, raw sockets) and nmap. Traffic stays inside the namespace.

    sudo python bench/scan.py [--rounds 5] [--markdown] [--only syn]
    sudo python bench/scan.py --engines    # asyncio per connection vs the epoll engine
"""

from __future__ import annotations

import argparse
import os
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from _netns import python_in_namespace  # bench/ is sys.path[0] when run as a script

ROOT = Path(__file__).resolve().parents[1]
HOSTS = [f"127.0.0.{i}" for i in range(1, 17)]
# ~20 listeners: the first host gets well-known and high ports (for the -p- sweeps),
# the others a few ports under 1000 each (for the 16 x 1000 scenario).
LISTENERS = [("127.0.0.1", p) for p in (21, 22, 25, 80, 443, 993, 3306, 8080, 27017, 40001, 65000)]
LISTENERS += [
    (h, p) for h, p in zip(HOSTS[1:10], (22, 53, 80, 110, 143, 389, 443, 636, 995), strict=True)
]

LISTEN_SCRIPT = """
import socket, sys
socks = []
for spec in sys.argv[1:]:
    host, port = spec.rsplit(":", 1)
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, int(port))); s.listen(128); socks.append(s)
print("ready", flush=True)
sys.stdin.read()
"""


@contextmanager
def namespace() -> Iterator[str]:
    prefix = os.environ.get("PORTKIT_BENCH_NETNS_PREFIX", "pk-scan-bench")
    name = f"{prefix}-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def listeners(ns: str) -> AbstractContextManager[None]:
    specs = [f"{h}:{p}" for h, p in LISTENERS]
    return python_in_namespace(ns, LISTEN_SCRIPT, specs, what="listeners")


def open_set(xml_path: Path) -> set[tuple[str, int]]:
    found = set()
    for host in ET.parse(xml_path).getroot().iter("host"):
        address = host.find("address")
        assert address is not None
        for port in host.iter("port"):
            state = port.find("state")
            if state is not None and state.get("state") == "open":
                found.add((address.get("addr", ""), int(port.get("portid", "0"))))
    return found


def timed(ns: str, argv: list[str]) -> tuple[float, float]:
    """Run ``argv`` in the namespace; return (wall seconds, CPU seconds: user + system)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(
        ["ip", "netns", "exec", ns, *argv], env=env, capture_output=True, check=False
    )
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({proc.returncode}): {proc.stderr.decode()[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def scenarios() -> list[tuple[str, list[str], list[str], set[tuple[str, int]]]]:
    one = {(h, p) for h, p in LISTENERS if h == "127.0.0.1"}
    under_1000 = {(h, p) for h, p in LISTENERS if p <= 1000}
    pk = [sys.executable, "-m", "portkit", "scan"]
    return [
        ("connect, 1 host x 65,535 ports", [*pk, "127.0.0.1", "-p-"], ["nmap", "-sT", "-p-", "-n", "-Pn", "127.0.0.1"], one),
        ("syn, 1 host x 65,535 ports", [*pk, "127.0.0.1", "-p-", "--syn"], ["nmap", "-sS", "-p-", "-n", "-Pn", "127.0.0.1"], one),
        ("connect, 16 hosts x 1,000 ports", [*pk, "127.0.0.1-16", "-p", "1-1000"], ["nmap", "-sT", "-p", "1-1000", "-n", "-Pn", "127.0.0.1-16"], under_1000),
    ]  # fmt: skip


ENGINES_SCRIPT = """
import asyncio, socket, sys, time
from portkit.scan import scan

async def with_asyncio(host, width=2000):
    # The straightforward design: one asyncio connection attempt per port.
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(width)
    found = []
    async def one(port):
        async with gate:
            sock = socket.socket()
            sock.setblocking(False)
            try:
                await loop.sock_connect(sock, (host, port))
                found.append(port)
            except OSError:
                pass
            finally:
                sock.close()
    await asyncio.gather(*(one(p) for p in range(1, 65536)))
    return found

async def with_portkit(host):
    return [r.port async for r in scan(host, "-", processes=1) if r.state.value == "open"]

async def main():
    for name, run in [("asyncio sock_connect", with_asyncio), ("portkit epoll engine", with_portkit)] * 2:
        wall, cpu = time.perf_counter(), time.process_time()
        found = await run("127.0.0.1")
        print(f"{name}: {time.perf_counter() - wall:.3f} s wall, "
              f"{time.process_time() - cpu:.3f} s CPU, open {sorted(found)}", flush=True)
asyncio.run(main())
"""


def compare_engines() -> int:
    """The engine design question: asyncio per connection, or one epoll set? (in-process)."""
    with namespace() as ns, listeners(ns):
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        subprocess.run(
            ["ip", "netns", "exec", ns, sys.executable, "-c", ENGINES_SCRIPT], env=env, check=True
        )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--markdown", action="store_true", help="print a table for docs/benchmarks.md"
    )
    parser.add_argument(
        "--only", metavar="WORD", help="run only the scenarios whose title contains WORD"
    )
    parser.add_argument(
        "--engines",
        action="store_true",
        help="instead: a full sweep with asyncio connections vs portkit's epoll engine",
    )
    args = parser.parse_args()
    if os.geteuid() != 0 or shutil.which("nmap") is None:
        print("bench/scan.py needs root (namespaces, raw sockets) and nmap", file=sys.stderr)
        return 2
    if args.engines:
        return compare_engines()
    rows = []
    with namespace() as ns, listeners(ns), tempfile.TemporaryDirectory() as tmp:
        ours_xml, theirs_xml = Path(tmp) / "portkit.xml", Path(tmp) / "nmap.xml"
        for title, ours, theirs, expected in scenarios():
            if args.only and args.only not in title:
                continue
            ours_cmd = [*ours, "-o", "xml", "--output", str(ours_xml)]
            theirs_cmd = [*theirs, "-oX", str(theirs_xml)]
            times: dict[str, list[float]] = {"portkit": [], "nmap": []}
            cpus: dict[str, list[float]] = {"portkit": [], "nmap": []}
            for rnd in range(args.rounds):
                order = [("portkit", ours_cmd, ours_xml), ("nmap", theirs_cmd, theirs_xml)]
                for tool, cmd, out in order if rnd % 2 == 0 else order[::-1]:
                    wall, cpu = timed(ns, cmd)
                    times[tool].append(wall)
                    cpus[tool].append(cpu)
                    got = open_set(out)
                    if got != expected:
                        missing, extra = sorted(expected - got), sorted(got - expected)
                        raise SystemExit(
                            f"{title}: {tool} round {rnd}: missing {missing}, extra {extra}"
                        )
            ours_median = statistics.median(times["portkit"])
            theirs_median = statistics.median(times["nmap"])
            ours_cpu = statistics.median(cpus["portkit"])
            theirs_cpu = statistics.median(cpus["nmap"])
            rows.append((title, ours_median, theirs_median, ours_cpu, theirs_cpu))
            print(
                f"{title}: wall portkit {ours_median:.3f} s, nmap {theirs_median:.3f} s, "
                f"ratio {ours_median / theirs_median:.2f}; CPU portkit {ours_cpu:.3f} s, "
                f"nmap {theirs_cpu:.3f} s, ratio {ours_cpu / theirs_cpu:.2f} "
                f"(open sets equal in all {args.rounds} rounds)",
                flush=True,
            )
    if args.markdown:
        load = os.getloadavg()[0]
        print(f"\n{args.rounds} rounds, medians; load average {load:.1f} at the end\n")
        print(
            "| scenario | wall portkit | wall nmap | wall ratio | CPU portkit | CPU nmap | CPU ratio |"
        )
        print("|---|---|---|---|---|---|---|")
        for title, ours_w, theirs_w, ours_c, theirs_c in rows:
            print(
                f"| {title} | {ours_w:.3f} s | {theirs_w:.3f} s | {ours_w / theirs_w:.2f} "
                f"| {ours_c:.3f} s | {theirs_c:.3f} s | {ours_c / theirs_c:.2f} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
