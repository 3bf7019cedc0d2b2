"""Benchmark: ``portkit scan`` against nmap, side by side, in a namespace of its own.

Creates a network namespace ``pk-scan-bench-*`` (deleted afterwards, even on failure;
``PORTKIT_BENCH_NETNS_PREFIX`` replaces the ``pk-scan-bench`` prefix)
with about 20 listeners on assorted ports across 16 loopback addresses, then runs
each scenario for both tools, alternating which goes first, for several rounds:

1. every TCP port of one host, connect scan:  portkit scan -p-        vs nmap -sT -p- -n -Pn
2. the same with raw SYN packets:             portkit scan -p- --syn  vs nmap -sS -p- -n -Pn
3. 16 hosts x 1,000 ports, connect scan:      portkit scan -p 1-1000  vs nmap -sT -p 1-1000
4. one port (22), connect scan and SYN:      portkit scan -p 22 [--syn] vs nmap -sT/-sS -p 22

With ``--link veth`` the scanner and the target are two namespaces joined by a veth pair
(``bench._netns.veth_link``): the target, 198.18.0.2, holds 500 random listeners, 50 ports
that accept and close at once and ``--dropped`` ports dropped by nftables (default 20),
and the scenarios are the two sweeps of it and the one-port scans (the fixed cost):

1. every TCP port, connect scan:  portkit scan -p-        vs nmap -sT -p- -n -Pn
2. the same with raw SYN packets: portkit scan -p- --syn  vs nmap -sS -p- -n -Pn
3. one port, connect scan:        portkit scan -p P       vs nmap -sT -p P -n -Pn
4. one port, SYN:                 portkit scan -p P --syn vs nmap -sS -p P -n -Pn

Every run's open set must equal the listeners (and so nmap's); any difference stops
the benchmark. ``--masscan RATE`` adds masscan's sweep of the link at RATE packets a
second (a port it calls open that is not stops the benchmark; how many of the open ports
it found is reported).
``--memory`` instead runs one scan of a /16 x --top 100 per engine (6.5 million probes,
about 3 minutes) against addresses that exist only in the target namespace, and reports
portkit's peak RSS (``portkit scan`` has no mode that plans without sending). Reports the median wall time of each command (process start to exit,
so both pay their start-up) and its CPU time (user + system, children included), each
with portkit's figure as a fraction of nmap's. On a shared machine the wall times move
with everyone else's load; the CPU times much less.

``--base SRC`` also runs portkit from another tree's ``src`` (``git archive REV src | tar
-x -C /tmp/base``) in every round, beside this tree's and nmap's: before and after a
change under the same load. (Compile both trees' bytecode first, ``python -m compileall``,
or each run compiles what it imports.)

Needs root (namespaces, raw sockets) and nmap. Traffic stays inside the namespaces.

    sudo python bench/scan.py [--rounds 7] [--markdown] [--only syn] [--link veth]
    sudo python bench/scan.py --link veth --masscan 2000000
    sudo python bench/scan.py --link veth --base /tmp/base/src --only "1 host"
    sudo python bench/scan.py --memory     # peak RSS of a /16 x --top 100 scan
    sudo python bench/scan.py --engines    # asyncio per connection vs the epoll engine
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

# bench/ is sys.path[0] when run as a script
from _netns import Link, namespace, python_in_namespace, random_services, veth_link

ROOT = Path(__file__).resolve().parents[1]
HOSTS = [f"127.0.0.{i}" for i in range(1, 17)]
# ~20 listeners: the first host gets well-known and high ports (for the -p- sweeps),
# the others a few ports under 1000 each (for the 16 x 1000 scenario).
LISTENERS = [("127.0.0.1", p) for p in (21, 22, 25, 80, 443, 993, 3306, 8080, 27017, 40001, 65000)]
LISTENERS += [
    (h, p) for h, p in zip(HOSTS[1:10], (22, 53, 80, 110, 143, 389, 443, 636, 995), strict=True)
]
# The veth target's services: one fixed draw, so runs on different days scan the same ports.
VETH_SEED = 11

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

Opens = set[tuple[str, int]]


@dataclass(frozen=True)
class Scenario:
    title: str
    ours: list[str]
    theirs: list[str]
    expected: Opens


@dataclass(frozen=True)
class Run:
    wall: float  # seconds, process start to exit
    cpu: float  # seconds, user + system, children included
    rss_mb: float  # peak resident set of the process or its largest child


@contextmanager
def loopback_namespace() -> Iterator[str]:
    prefix = os.environ.get("PORTKIT_BENCH_NETNS_PREFIX", "pk-scan-bench")
    with namespace(f"{prefix}-") as name:
        yield name


def listeners(ns: str) -> AbstractContextManager[None]:
    specs = [f"{h}:{p}" for h, p in LISTENERS]
    return python_in_namespace(ns, LISTEN_SCRIPT, specs, what="listeners")


def open_set(xml_path: Path) -> Opens:
    found = set()
    for host in ET.parse(xml_path).getroot().iter("host"):
        address = host.find("address")
        assert address is not None
        for port in host.iter("port"):
            state = port.find("state")
            if state is not None and state.get("state") == "open":
                found.add((address.get("addr", ""), int(port.get("portid", "0"))))
    return found


def timed(ns: str, argv: list[str], src: Path = ROOT / "src") -> Run:
    """Run ``argv`` in the namespace (portkit from ``src``); return its wall time, CPU
    time and peak RSS."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    with tempfile.TemporaryFile() as errors:
        start = time.perf_counter()
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, *argv], env=env, stdout=subprocess.DEVNULL, stderr=errors
        )
        # wait4 gives this child's own usage (ip netns exec execs the command in place).
        _pid, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            errors.seek(0)
            message = errors.read().decode(errors="replace")[-500:]
            raise SystemExit(f"{argv[0]} failed ({proc.returncode}): {message}")
    return Run(elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


PK = [sys.executable, "-m", "portkit", "scan"]


def loopback_scenarios() -> list[Scenario]:
    one = {(h, p) for h, p in LISTENERS if h == "127.0.0.1"}
    under_1000 = {(h, p) for h, p in LISTENERS if p <= 1000}
    return [
        Scenario("connect, 1 host x 65,535 ports", [*PK, "127.0.0.1", "-p-"], ["nmap", "-sT", "-p-", "-n", "-Pn", "127.0.0.1"], one),
        Scenario("syn, 1 host x 65,535 ports", [*PK, "127.0.0.1", "-p-", "--syn"], ["nmap", "-sS", "-p-", "-n", "-Pn", "127.0.0.1"], one),
        Scenario("connect, 16 hosts x 1,000 ports", [*PK, "127.0.0.1-16", "-p", "1-1000"], ["nmap", "-sT", "-p", "1-1000", "-n", "-Pn", "127.0.0.1-16"], under_1000),
        Scenario("connect, 1 port", [*PK, "127.0.0.1", "-p", "22"], ["nmap", "-sT", "-p", "22", "-n", "-Pn", "127.0.0.1"], {("127.0.0.1", 22)}),
        Scenario("syn, 1 port", [*PK, "127.0.0.1", "-p", "22", "--syn"], ["nmap", "-sS", "-p", "22", "-n", "-Pn", "127.0.0.1"], {("127.0.0.1", 22)}),
    ]  # fmt: skip


def veth_scenarios(link: Link) -> list[Scenario]:
    target = link.target_v4
    every = {(target, p) for p in link.services.open_tcp}
    port = min(link.services.open_tcp)
    one = {(target, port)}
    return [
        Scenario("veth: connect, 1 host x 65,535 ports", [*PK, target, "-p-"], ["nmap", "-sT", "-p-", "-n", "-Pn", target], every),
        Scenario("veth: syn, 1 host x 65,535 ports", [*PK, target, "-p-", "--syn"], ["nmap", "-sS", "-p-", "-n", "-Pn", target], every),
        Scenario("veth: connect, 1 port", [*PK, target, "-p", str(port)], ["nmap", "-sT", "-p", str(port), "-n", "-Pn", target], one),
        Scenario("veth: syn, 1 port", [*PK, target, "-p", str(port), "--syn"], ["nmap", "-sS", "-p", str(port), "-n", "-Pn", target], one),
    ]  # fmt: skip


@contextmanager
def topology(args: argparse.Namespace) -> Iterator[tuple[str, list[Scenario], Link | None]]:
    """Yield (the namespace the scanners run in, the scenarios, the veth link if any)."""
    if args.link == "veth":
        services = random_services(500, closers=50, dropped=args.dropped, seed=VETH_SEED)
        with veth_link(services, prefix="pk-scan-bench-") as link:
            yield link.scanner, veth_scenarios(link), link
    else:
        with loopback_namespace() as ns, listeners(ns):
            yield ns, loopback_scenarios(), None


def measure(
    ns: str, scenario: Scenario, rounds: int, tmp: Path, base: Path | None = None
) -> dict[str, list[Run]]:
    """Paired rounds, alternating which tool goes first; every open set checked.

    With ``base`` (another tree's ``src``), portkit from that tree runs in each round
    too (``runs["base"]``): before and after a change, beside nmap, in the same run.
    """
    ours_xml, theirs_xml, base_xml = tmp / "portkit.xml", tmp / "nmap.xml", tmp / "base.xml"
    order = [
        ("portkit", [*scenario.ours, "-o", "xml", "--output", str(ours_xml)], ours_xml),
        ("nmap", [*scenario.theirs, "-oX", str(theirs_xml)], theirs_xml),
    ]
    if base is not None:
        order.insert(
            1, ("base", [*scenario.ours, "-o", "xml", "--output", str(base_xml)], base_xml)
        )
    runs: dict[str, list[Run]] = {tool: [] for tool, _cmd, _out in order}
    for rnd in range(rounds):
        for tool, cmd, out in order if rnd % 2 == 0 else order[::-1]:
            runs[tool].append(timed(ns, cmd, base if tool == "base" and base else ROOT / "src"))
            got = open_set(out)
            if got != scenario.expected:
                missing = sorted(scenario.expected - got)
                extra = sorted(got - scenario.expected)
                raise SystemExit(
                    f"{scenario.title}: {tool} round {rnd}: missing {missing}, extra {extra}"
                )
    return runs


def median_ratio(runs: dict[str, list[Run]], field: str) -> tuple[float, float, float]:
    """Medians of one field for both tools, and the median of the per-round ratios."""
    ours = [getattr(r, field) for r in runs["portkit"]]
    theirs = [getattr(r, field) for r in runs["nmap"]]
    pairs = [a / b for a, b in zip(ours, theirs, strict=True)]
    return statistics.median(ours), statistics.median(theirs), statistics.median(pairs)


def masscan(link: Link, rate: int, rounds: int, tmp: Path) -> list[tuple[float, int]]:
    """masscan's full sweep of the link's target at ``rate``: (wall, open ports found)."""
    mac = json.loads(
        subprocess.run(
            ["ip", "-n", link.target, "-j", "link", "show", "dev", link.target_if],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )[0]["address"]
    out = tmp / "masscan.txt"
    results = []
    for _ in range(rounds):
        # masscan sends from its own stack; the link has no router, so it is given the
        # target's MAC. --wait 1: one second for late replies after the last probe.
        argv = ["masscan", link.target_v4, "-p0-65535", "--rate", str(rate), "--wait", "1"]
        argv += ["--router-mac", mac, "--adapter-ip", link.scanner_v4, "-e", link.scanner_if]
        run = timed(link.scanner, [*argv, "-oL", str(out)])
        found = {
            int(line.split()[2])
            for line in out.read_text().splitlines()
            if line.startswith("open tcp ")
        }
        if found - link.services.open_tcp:
            raise SystemExit(f"masscan: false opens {sorted(found - link.services.open_tcp)}")
        print(f"masscan round: {run.wall:.3f} s, {len(found)} open", flush=True)
        results.append((run.wall, len(found)))
    return results


def memory() -> int:
    """Peak RSS of ``portkit scan <a /16> --top 100``, connect and SYN, inside the link.

    The target namespace answers for all of 198.19.0.0/16 (a ``local`` route: every
    address is its own), and the scanner routes that block to it over the veth pair;
    nothing outside the two namespaces has those routes.
    """
    services = random_services(50, seed=VETH_SEED)
    with veth_link(services, prefix="pk-scan-bench-") as link:
        subprocess.run(["ip", "-n", link.target, "route", "add", "local", "198.19.0.0/16", "dev", "lo"], check=True)  # fmt: skip
        subprocess.run(["ip", "-n", link.scanner, "route", "add", "198.19.0.0/16", "via", link.target_v4], check=True)  # fmt: skip
        for engine in ([], ["--syn"]):
            argv = [*PK, "198.19.0.0/16", "--top", "100", *engine, "-o", "json"]
            run = timed(link.scanner, [*argv, "--output", "/dev/null"])
            # ru_maxrss from wait4: the largest of the process and the children it waited for.
            print(
                f"/16 x --top 100, {' '.join(engine) or 'connect'}: {run.wall:.1f} s, "
                f"CPU {run.cpu:.1f} s, peak RSS {run.rss_mb:.0f} MB (largest process)",
                flush=True,
            )
    return 0


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
    with loopback_namespace() as ns, listeners(ns):
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        subprocess.run(
            ["ip", "netns", "exec", ns, sys.executable, "-c", ENGINES_SCRIPT], env=env, check=True
        )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument(
        "--markdown", action="store_true", help="print a table for docs/benchmarks.md"
    )
    parser.add_argument(
        "--only", metavar="WORD", help="run only the scenarios whose title contains WORD"
    )
    parser.add_argument(
        "--link",
        choices=("loopback", "veth"),
        default="loopback",
        help="scan a namespace's loopback (default) or a target across a veth pair",
    )
    parser.add_argument(
        "--dropped", type=int, default=20, help="veth: TCP ports nftables drops (default 20)"
    )
    parser.add_argument(
        "--masscan", type=int, metavar="RATE", help="veth: also sweep with masscan at RATE pps"
    )
    parser.add_argument(
        "--memory", action="store_true", help="instead: peak RSS of a /16 x --top 100 scan"
    )
    parser.add_argument(
        "--base",
        type=Path,
        metavar="SRC",
        help="also run portkit from another tree's src in every round (before/after)",
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
    if args.masscan and (args.link != "veth" or shutil.which("masscan") is None):
        print("bench/scan.py: --masscan needs --link veth and masscan", file=sys.stderr)
        return 2
    if args.engines:
        return compare_engines()
    if args.memory:
        return memory()
    rows = []
    load_start = os.getloadavg()[0]
    with topology(args) as (ns, scenarios, link), tempfile.TemporaryDirectory() as tmp:
        for scenario in scenarios:
            if args.only and args.only not in scenario.title:
                continue
            runs = measure(ns, scenario, args.rounds, Path(tmp), args.base)
            if args.base is not None:
                # The base tree's runs against nmap's of the same rounds.
                before = {"portkit": runs["base"], "nmap": runs["nmap"]}
                b_wall, _n, b_ratio = median_ratio(before, "wall")
                b_cpu, _n, b_cpu_ratio = median_ratio(before, "cpu")
                b_rounds = sorted(
                    a.wall / b.wall for a, b in zip(runs["base"], runs["nmap"], strict=True)
                )
                print(
                    f"{scenario.title}: base tree: wall {b_wall:.3f} s, ratio {b_ratio:.2f} "
                    f"(rounds {', '.join(f'{r:.2f}' for r in b_rounds)}); CPU {b_cpu:.3f} s, "
                    f"ratio {b_cpu_ratio:.2f}",
                    flush=True,
                )
            ours_w, theirs_w, ratio_w = median_ratio(runs, "wall")
            ours_c, theirs_c, ratio_c = median_ratio(runs, "cpu")
            rss = statistics.median(r.rss_mb for r in runs["portkit"])
            rows.append((scenario.title, ours_w, theirs_w, ratio_w, ours_c, theirs_c, ratio_c, rss))
            ratios = sorted(
                a.wall / b.wall for a, b in zip(runs["portkit"], runs["nmap"], strict=True)
            )
            print(
                f"{scenario.title}: wall portkit {ours_w:.3f} s, nmap {theirs_w:.3f} s, "
                f"ratio {ratio_w:.2f} (rounds {', '.join(f'{r:.2f}' for r in ratios)}); "
                f"CPU portkit {ours_c:.3f} s, nmap {theirs_c:.3f} s, ratio {ratio_c:.2f}; "
                f"portkit peak RSS {rss:.0f} MB (open sets equal in all {args.rounds} rounds)",
                flush=True,
            )
        if args.masscan and link is not None:
            swept = masscan(link, args.masscan, args.rounds, Path(tmp))
            wall = statistics.median(w for w, _ in swept)
            print(
                f"masscan --rate {args.masscan}: median {wall:.3f} s, open ports found "
                f"{sorted(n for _, n in swept)} of {len(link.services.open_tcp)}",
                flush=True,
            )
    if args.markdown:
        load = os.getloadavg()[0]
        print(
            f"\n{args.rounds} paired rounds, medians (ratio: median of the per-round ratios); "
            f"load average {load_start:.1f} at the start, {load:.1f} at the end\n"
        )
        print(
            "| scenario | wall portkit | wall nmap | wall ratio | CPU portkit | CPU nmap "
            "| CPU ratio | portkit RSS |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for title, ours_w, theirs_w, ratio_w, ours_c, theirs_c, ratio_c, rss in rows:
            print(
                f"| {title} | {ours_w:.3f} s | {theirs_w:.3f} s | {ratio_w:.2f} "
                f"| {ours_c:.3f} s | {theirs_c:.3f} s | {ratio_c:.2f} | {rss:.0f} MB |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
