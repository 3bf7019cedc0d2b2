"""Benchmark: a scan on one process against the same scan on a local Dask cluster.

Creates a network namespace ``pk-cluster-bench-*`` (always deleted afterwards) holding
16 loopback hosts, 127.0.0.1-16, each with four services that speak first or answer a
request (an SSH banner, an SMTP greeting, a POP3 greeting and Python's own HTTP
server), then measures, inside the namespace, for several rounds (medians):

1. 16 hosts x 1,000 ports with ``--detect``: ``portkit scan`` in one process vs the
   same command with ``--workers 2`` (wall time from process start to exit, so the
   cluster pays for starting its scheduler and worker processes) and with
   ``--cluster ADDRESS`` of a scheduler with two workers already running (separate
   ``dask scheduler`` and ``dask worker`` processes in the namespace);
2. a trivial scan (one host, one port) the same three ways: the fixed cost of a
   cluster scan;
3. the cost of one shard: a started two-worker cluster runs 200 one-probe shards, and
   the same 200 probes run in one local scan; the difference per shard is what a shard
   adds (dispatch, a fresh event loop on the worker, results sent back).

Every cluster run's open ports and identified services must equal the single-process
run's (the benchmark stops otherwise). Needs root (a namespace). Traffic stays in it.

    sudo python bench/cluster.py [--rounds 3] [--no-detect] [--markdown]

``--topology namespaces`` measures machines of their own instead: a hub namespace with a
bridge, and joined to it by veth pairs a client, a scheduler, up to ``--max-workers``
worker namespaces (each its own address, a ``dask worker`` in it) and a target
namespace holding 64 hosts (198.18.1.1-64, a few ports listening on each). All in the
RFC 2544 benchmarking block, none with a route elsewhere; every namespace (and with it
every interface) is created with a random suffix and deleted on the way out. For 1, 2
and 3 workers, ``scan 198.18.1.1-64 -p 1-2000 --cluster ... --rate-per-worker R`` from
the client against ``--rate R`` in one process on a worker machine, paired rounds.

    sudo python bench/cluster.py --topology namespaces [--rounds 3] [--rate 8000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from _netns import namespace, python_in_namespace  # bench/ is sys.path[0] when run as a script

ROOT = Path(__file__).resolve().parents[1]
HOSTS = [f"127.0.0.{i}" for i in range(1, 17)]
SERVICES = {22: "ssh", 25: "smtp", 110: "pop3", 80: "http"}

# Runs inside the namespace: banner services on 22/25/110 and http.server on 80, on
# every host; prints "ready" once every socket listens, stops when stdin closes.
SERVE = """
import socket, sys, threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
BANNERS = {22: b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\\r\\n",
           25: b"220 mail.example ESMTP Postfix (Debian/GNU)\\r\\n",
           110: b"+OK Dovecot (Debian) ready.\\r\\n"}
def banner(sock, data):
    while True:
        conn, _ = sock.accept()
        try:
            conn.sendall(data)
        except OSError:
            pass
        conn.close()
class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass
class Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # a scan resets connections; that is no error here
for host in sys.argv[1:]:
    for port, data in BANNERS.items():
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port)); s.listen(256)
        threading.Thread(target=banner, args=(s, data), daemon=True).start()
    httpd = Server((host, 80), Quiet)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
print("ready", flush=True)
sys.stdin.read()
"""


def services(ns: str) -> AbstractContextManager[None]:
    return python_in_namespace(ns, SERVE, list(HOSTS), what="the bench services")


def env(src: Path = ROOT / "src") -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(src)}


def run_scan(ns: str, args: list[str]) -> tuple[float, dict[str, Any]]:
    """Run ``portkit scan ARGS -o json`` in the namespace; return wall time and report."""
    argv = ["ip", "netns", "exec", ns, sys.executable, "-m", "portkit", "scan", *args, "-o", "json"]
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env(), capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"portkit scan {' '.join(args)} failed: {proc.stderr.strip()[-400:]}")
    return elapsed, json.loads(proc.stdout)


def findings(report: dict[str, Any]) -> set[tuple[str, int, str, str | None]]:
    found = set()
    for host in report["hosts"]:
        for port in host["ports"]:
            if port["state"] == "open":
                ident = port.get("identified") or {}
                found.add((host["address"], port["port"], port["state"], ident.get("service")))
    return found


def expected_open() -> set[tuple[str, int]]:
    return {(h, p) for h in HOSTS for p in SERVICES}


# --- the per-shard cost, measured inside the namespace --------------------------------


async def _shard_cost(shards: int) -> dict[str, float]:
    from portkit.scan import plan_scan, scan_batches
    from portkit.scan._cluster import ClusterOptions, ClusterScan

    ports = f"1000-{1000 + shards - 1}"
    plan = await plan_scan(["127.0.0.1"], ports)
    start = time.perf_counter()
    local = [r async for batch in scan_batches(plan) for r in batch.results]
    direct = time.perf_counter() - start

    import distributed

    async with distributed.LocalCluster(  # type: ignore[no-untyped-call]
        n_workers=2,
        threads_per_worker=1,
        host="127.0.0.1",
        dashboard_address=None,
        asynchronous=True,
        silence_logs=40,
    ) as cluster:
        options = ClusterOptions(address=cluster.scheduler_address, shard_probes=1)
        for _warm in range(2):  # the first shards also import portkit on the workers
            run = await ClusterScan.open(plan, options, detect=False)
            start = time.perf_counter()
            remote = [r async for batch in run.batches() for r in batch.results]
            sharded = time.perf_counter() - start
    if not len(remote) == len(local) == shards:
        raise SystemExit("the shard-cost scan lost results")
    return {"shards": shards, "direct": direct, "sharded": sharded}


async def _shard_cost_at(address: str, hosts: str, ports: str) -> dict[str, float]:
    """One-probe shards of ``hosts`` x ``ports`` through the running cluster at
    ``address``, against the same probes in one local scan (best of two each)."""
    from portkit.scan import plan_scan, scan_batches
    from portkit.scan._cluster import ClusterOptions, ClusterScan

    plan = await plan_scan([hosts], ports)
    direct = sharded = float("inf")
    options = ClusterOptions(address=address, shard_probes=1)
    for _round in range(3):  # the first also imports portkit on the workers: not counted
        start = time.perf_counter()
        local = [r async for batch in scan_batches(plan) for r in batch.results]
        took = time.perf_counter() - start
        run = await ClusterScan.open(plan, options, detect=False)
        start = time.perf_counter()
        remote = [r async for batch in run.batches() for r in batch.results]
        if _round:
            direct, sharded = min(direct, took), min(sharded, time.perf_counter() - start)
        if not len(remote) == len(local) == plan.probe_count:
            raise SystemExit("the shard-cost scan lost results")
    return {"shards": plan.probe_count, "direct": direct, "sharded": sharded}


def _noop(value: int) -> int:
    return value


def _result_costs(count: int = 4096, rounds: int = 5) -> dict[str, float]:
    """A full shard's results (closed ports of 16 hosts) pickled and unpickled as
    objects, and packed as columns (what the workers send): ms, medians of paired rounds."""
    import pickle

    from portkit.results import PortResult, PortState
    from portkit.scan._packed import pack, unpack

    results = [
        PortResult(host=f"198.18.1.{i % 16 + 1}", port=i // 16 + 1, transport="tcp",
                   state=PortState.CLOSED, reason="conn-refused", expected="http", rtt=1e-4)
        for i in range(count)
    ]  # fmt: skip
    costs: dict[str, list[float]] = {k: [] for k in ("objects", "packed", "bytes_o", "bytes_p")}
    for _ in range(rounds):
        start = time.perf_counter()
        data = pickle.dumps(results)
        pickle.loads(data)
        costs["objects"].append(time.perf_counter() - start)
        start = time.perf_counter()
        packed = pickle.dumps(pack(results))
        unpack(pickle.loads(packed))
        costs["packed"].append(time.perf_counter() - start)
        costs["bytes_o"].append(len(data))
        costs["bytes_p"].append(len(packed))
    return {
        "shard_results_objects_ms": statistics.median(costs["objects"]) * 1000,
        "shard_results_packed_ms": statistics.median(costs["packed"]) * 1000,
        "shard_results_objects_bytes": statistics.median(costs["bytes_o"]),
        "shard_results_packed_bytes": statistics.median(costs["bytes_p"]),
    }


async def _breakdown() -> dict[str, float]:
    """Where a one-probe shard's fixed cost goes, on a two-worker local cluster."""
    import pickle

    import distributed

    from portkit.scan import plan_scan
    from portkit.scan._executors import run_shard, run_shard_packed
    from portkit.scan._shards import ShardTask, choose_layout, make_shards
    from portkit.scan._targets import TargetTable

    plan = await plan_scan(["127.0.0.1-200"], "9")
    table = TargetTable(plan.targets)
    layout = choose_layout(len(table), plan.ports, slots=2, shard_probes=1)
    tasks = [
        ShardTask(shard=shard, syn=False, options=plan.options, detect=False)
        for shard in make_shards(table, plan.ports, layout)
    ]

    def in_process() -> tuple[float, int]:
        """Seconds a one-probe shard takes on a worker itself; its result's size."""
        size = len(pickle.dumps(run_shard_packed(tasks[0])))  # as it travels
        start = time.perf_counter()
        for task in tasks:
            run_shard(task)
        return (time.perf_counter() - start) / len(tasks), size

    took, size = await asyncio.to_thread(in_process)
    figures = {
        "task_bytes": float(len(pickle.dumps(tasks[0]))),
        "result_bytes": float(size),
        "run_shard_ms": took * 1000,
    }
    figures |= _result_costs()

    async def window(client: Any, depth: int, count: int = 200) -> float:
        """No-op tasks, ``depth`` in flight at a time: seconds a task."""
        running: set[Any] = set()
        submitted = 0
        start = time.perf_counter()
        while submitted < count or running:
            while submitted < count and len(running) < depth:
                running.add(asyncio.ensure_future(client.submit(_noop, submitted, pure=False)))
                submitted += 1
            _done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
        return (time.perf_counter() - start) / count

    async with (
        distributed.LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None,
            asynchronous=True, silence_logs=40,
        ) as cluster,
        distributed.Client(cluster.scheduler_address, asynchronous=True) as client,  # type: ignore[no-untyped-call]
    ):  # fmt: skip
        await window(client, 4, 20)  # warm
        for depth in (4, 8, 16, 64):
            figures[f"noop_depth_{depth}_ms"] = await window(client, depth) * 1000
    return figures


@contextmanager
def running_cluster(ns: str, workers: int = 2) -> Iterator[str]:
    """``dask scheduler`` and ``dask worker`` processes in the namespace; yields the address."""
    with tempfile.TemporaryDirectory() as tmp:
        info = Path(tmp) / "scheduler.json"
        inside = ["ip", "netns", "exec", ns, sys.executable, "-m", "dask"]
        quiet = {
            "stdin": subprocess.DEVNULL,
            "stdout": subprocess.DEVNULL,
            "stderr": subprocess.DEVNULL,
        }
        procs = [
            subprocess.Popen(
                [*inside, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file", str(info)],
                env=env(),
                **quiet,  # type: ignore[arg-type]
            )
        ]  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while not info.exists() or not info.read_text().strip().endswith("}"):
                if time.monotonic() > deadline or procs[0].poll() is not None:
                    raise SystemExit("the dask scheduler did not start")
                time.sleep(0.05)  # polling the file the scheduler writes once it listens
            address = str(json.loads(info.read_text())["address"])
            procs += [
                subprocess.Popen(
                    [*inside, "worker", address, "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1"],
                    env=env(),
                    **quiet,  # type: ignore[arg-type]
                )
                for _ in range(workers)
            ]  # fmt: skip
            wait = [*inside[:-2], "-c", WAIT_WORKERS, address, str(workers)]
            subprocess.run(wait, env=env(), check=True, timeout=120)
            yield address
        finally:
            for proc in reversed(procs):
                proc.terminate()
            for proc in procs:
                proc.wait(timeout=30)


WAIT_WORKERS = """
import sys
from distributed import Client
with Client(sys.argv[1], timeout=60) as client:
    client.wait_for_workers(int(sys.argv[2]), timeout=60)
"""


# --- machines of their own: namespaces behind a bridge --------------------------------

TARGET_HOSTS = 64
TOPOLOGY_PORTS = "1-2000"
_NET = "198.18.0"  # client .2, scheduler .3, workers .11-, target .100; hosts 198.18.1.x

# Runs in the target namespace: listens on the given ports of every address and closes
# what it accepts (so the accept queues never fill); "ready", then stops on stdin EOF.
LISTEN = """
import selectors, socket, sys, threading
sel = selectors.DefaultSelector()
for port in map(int, sys.argv[1:]):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(4096); s.setblocking(False)
    sel.register(s, selectors.EVENT_READ)
def serve():
    while True:
        for key, _ in sel.select():
            try:
                conn, _ = key.fileobj.accept(); conn.close()
            except OSError:
                pass
threading.Thread(target=serve, daemon=True).start()
print("ready", flush=True)
sys.stdin.read()
"""


def _ip(ns: str, *args: str) -> None:
    subprocess.run(["ip", "-n", ns, *args], check=True)


@contextmanager
def topology(workers: int) -> Iterator[dict[str, str]]:
    """Namespaces ``client``, ``scheduler``, ``w1``.., ``target`` behind a bridge; yields
    role -> namespace name. Everything is deleted on the way out."""
    suffix = secrets.token_hex(3)
    roles = {"client": f"{_NET}.2", "scheduler": f"{_NET}.3", "target": f"{_NET}.100"}
    roles |= {f"w{i}": f"{_NET}.{10 + i}" for i in range(1, workers + 1)}
    with contextlib.ExitStack() as stack:
        hub = stack.enter_context(namespace("pk-clt-hub-"))
        _ip(hub, "link", "add", "br0", "type", "bridge")
        _ip(hub, "link", "set", "br0", "up")
        names: dict[str, str] = {}
        for i, (role, address) in enumerate(roles.items()):
            ns = stack.enter_context(namespace(f"pk-clt-{role}-"))
            names[role] = ns
            # Under IFNAMSIZ; each end made inside its namespace, never on the host.
            hub_end, ns_end = f"pkb{suffix}{i:x}h", f"pkb{suffix}{i:x}n"
            _ip(hub, "link", "add", hub_end, "type", "veth", "peer", "name", ns_end, "netns", ns)
            _ip(hub, "link", "set", hub_end, "master", "br0", "up")
            _ip(ns, "addr", "add", f"{address}/23", "dev", ns_end)
            if role == "target":
                batch = "".join(
                    f"addr add 198.18.1.{h}/23 dev {ns_end}\n" for h in range(1, TARGET_HOSTS + 1)
                )
                subprocess.run(["ip", "-n", ns, "-batch", "-"], input=batch, text=True, check=True)
            _ip(ns, "link", "set", ns_end, "up")
        yield names


@contextmanager
def cluster_in(names: dict[str, str], workers: int, src: Path = ROOT / "src") -> Iterator[str]:
    """A ``dask scheduler`` in its namespace and ``workers`` ``dask worker``s, each in its
    own; yields the scheduler's address."""
    quiet: dict[str, Any] = {
        "stdin": subprocess.DEVNULL,
        "stdout": subprocess.DEVNULL,
        "stderr": subprocess.DEVNULL,
    }
    with tempfile.TemporaryDirectory() as tmp:
        info = Path(tmp) / "scheduler.json"

        def dask(role: str, *argv: str) -> subprocess.Popen[bytes]:
            cmd = ["ip", "netns", "exec", names[role], sys.executable, "-m", "dask", *argv]
            return subprocess.Popen(cmd, env=env(src), **quiet)

        procs = [
            dask("scheduler", "scheduler", "--host", f"{_NET}.3", "--port", "8786",
                 "--no-dashboard", "--scheduler-file", str(info))
        ]  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while not info.exists() or not info.read_text().strip().endswith("}"):
                if time.monotonic() > deadline or procs[0].poll() is not None:
                    raise SystemExit("the dask scheduler did not start")
                time.sleep(0.05)  # polling the file the scheduler writes once it listens
            address = str(json.loads(info.read_text())["address"])
            procs += [
                dask(f"w{i}", "worker", address, "--nthreads", "1", "--no-dashboard",
                     "--host", f"{_NET}.{10 + i}")
                for i in range(1, workers + 1)
            ]  # fmt: skip
            wait = ["ip", "netns", "exec", names["client"], sys.executable, "-c", WAIT_WORKERS]
            subprocess.run([*wait, address, str(workers)], env=env(src), check=True, timeout=120)
            yield address
        finally:
            for proc in reversed(procs):
                proc.terminate()
            for proc in procs:
                proc.wait(timeout=30)


def open_pairs(report: dict[str, Any]) -> set[tuple[str, int]]:
    return {(h, p) for h, p, _s, _i in findings(report)}


def topology_bench(
    rounds: int, rate: int, max_workers: int, markdown: bool, compare: Path | None = None
) -> int:
    ports = sorted(random.Random(17).sample(range(1, 2001), 12))
    expected = {(f"198.18.1.{h}", p) for h in range(1, TARGET_HOSTS + 1) for p in ports}
    scan = [f"198.18.1.1-{TARGET_HOSTS}", "-p", TOPOLOGY_PORTS]
    rows = []
    shard_rows: list[tuple[int, str, float, float, float | None]] = []
    with topology(max_workers) as names:
        target = python_in_namespace(
            names["target"], LISTEN, [str(p) for p in ports], what="target listeners"
        )
        with target:
            for workers in range(1, max_workers + 1):
                one: list[float] = []
                many: list[float] = []
                with cluster_in(names, workers) as address:
                    clustered = [*scan, "--cluster", address, "--rate-per-worker", str(rate)]
                    for rnd in range(rounds):
                        pair = [("one", "w1", [*scan, "--rate", str(rate)]),
                                ("many", "client", clustered)]  # fmt: skip
                        for key, role, argv in pair if rnd % 2 == 0 else pair[::-1]:
                            elapsed, report = run_scan(names[role], argv)
                            if open_pairs(report) != expected:
                                raise SystemExit(f"{key} ({workers} workers) found other pairs")
                            (one if key == "one" else many).append(elapsed)
                        print(
                            f"{workers} workers, round {rnd}: one process {one[-1]:.2f} s, "
                            f"cluster {many[-1]:.2f} s (x{many[-1] / one[-1]:.2f})",
                            flush=True,
                        )
                    costs = shard_costs(names["client"], address)
                if compare is not None:  # the same measurement with another portkit
                    with cluster_in(names, workers, compare) as address:
                        before = shard_costs(names["client"], address, compare)
                for label, cost in costs.items():
                    per = (cost["sharded"] - cost["direct"]) / cost["shards"] * 1000
                    was = None
                    if compare is not None:
                        old = before[label]
                        was = (old["sharded"] - old["direct"]) / old["shards"] * 1000
                    shown = "" if was is None else f" (the other portkit: {was:.2f} ms)"
                    print(f"{workers} workers, {label}: {per:.2f} ms a shard{shown}", flush=True)
                    shard_rows.append((workers, label, cost["shards"], per, was))
                if one:
                    ratios = [m / o for m, o in zip(many, one, strict=True)]
                    rows.append(
                        (workers, statistics.median(one), statistics.median(many),
                         statistics.median(ratios))
                    )  # fmt: skip
    for workers, a, b, r in rows:
        print(f"{workers} workers: one process {a:.2f} s, cluster {b:.2f} s, paired ratio x{r:.2f}")
    if markdown:
        print(
            "\n| workers | one process `--rate R` | cluster `--rate-per-worker R` | ratio (median of pairs) |"
        )
        print("|---:|---:|---:|---:|")
        for workers, a, b, r in rows:
            print(f"| {workers} | {a:.2f} s | {b:.2f} s | {r:.2f} |")
        print("\n| workers | one-probe shards | shards | overhead a shard | other portkit |")
        print("|---:|---|---:|---:|---:|")
        for workers, label, count, per, was in shard_rows:
            other = "" if was is None else f"{was:.2f} ms"
            print(f"| {workers} | {label} | {count:.0f} | {per:.2f} ms | {other} |")
    return 0


SHARD_COSTS = {
    "64 hosts x 4 ports": ("198.18.1.1-64", "1-4"),
    "1 host x 256 ports": ("198.18.1.1", "1-256"),
}


def shard_costs(ns: str, address: str, src: Path = ROOT / "src") -> dict[str, dict[str, float]]:
    """Per-shard cost through the running cluster, measured from the client namespace
    (client and workers running the portkit of ``src``)."""
    costs = {}
    for label, (hosts, ports) in SHARD_COSTS.items():
        argv = ["ip", "netns", "exec", ns, sys.executable, __file__,
                "--inner-shard-cost-at", address, hosts, ports]  # fmt: skip
        proc = subprocess.run(argv, env=env(src), capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise SystemExit(f"shard cost run failed: {proc.stderr.strip()[-400:]}")
        costs[label] = json.loads(proc.stdout.strip().splitlines()[-1])
    return costs


# --- the client's memory with every result of a big plan flowing through it ----------

# Run in a namespace with no interface but a loopback that is down: the scan's cluster
# is replaced by _Answering, which answers each shard in this process at once and sends
# nothing; and even if it did not, no packet could leave. What is measured is the
# client: shards made, results merged in order, every report written.
CLIENT_PLANS = {
    "16-top100": ["10.0.0.0/16", "--top", "100"],
    "8-1port": ["10.0.0.0/8", "-p", "443"],
}


class _Answering:
    """Stands for three workers: every probe of a shard answered filtered (no answer),
    one in about 1,000 open; returned whole, as a worker returns a shard."""

    slots = machines = 3
    ahead = 9

    async def start(self) -> None:
        return None

    def submit(self, task: Any, attempt: int) -> asyncio.Future[Any]:
        from portkit.results import PortResult, PortState

        shard = task.shard
        items = [("tcp", p) for p in shard.ports.tcp] + [("udp", p) for p in shard.ports.udp]
        results = []
        for target in shard.targets:
            last = int(target.address.rsplit(".", 1)[1])
            for transport, port in items:
                opened = (last * 7 + port) % 997 == 0
                results.append(
                    PortResult(
                        host=target.address,
                        port=port,
                        transport=transport,
                        state=PortState.OPEN if opened else PortState.FILTERED,
                        reason="syn-ack" if opened else "no-response",
                    )
                )
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.set_result((shard.index, results))
        return future

    async def close(self) -> None:
        return None


def _inner_client(plan: str, fmt: str, output: str) -> int:
    import resource

    import portkit.scan._cluster as cluster
    from portkit.cli import main as portkit_main

    cluster.make_executor = lambda **_kw: _Answering()  # type: ignore[attr-defined]
    start = time.perf_counter()
    code = portkit_main(
        ["scan", *CLIENT_PLANS[plan], "--cluster", "tcp://127.0.0.1:1", "-q",
         "-o", fmt, "--output", output]
    )  # fmt: skip
    elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"code": code, "elapsed": elapsed, "peak_mib": peak}))
    return 0


def client_memory(plans: list[str], formats: list[str], src: Path = ROOT / "src") -> int:
    rows = []
    with namespace("pk-clt-mem-", loopback=False) as ns, tempfile.TemporaryDirectory() as tmp:
        for plan in plans:
            for fmt in formats:
                # /8: 16.7 million hosts are gigabytes of report: written to /dev/null.
                out = os.devnull if plan.startswith("8") else str(Path(tmp) / f"scan.{fmt}")
                argv = ["ip", "netns", "exec", ns, sys.executable, __file__,
                        "--inner-client", plan, fmt, out]  # fmt: skip
                proc = subprocess.run(
                    argv, env=env(src), capture_output=True, text=True, check=False
                )
                if proc.returncode != 0:
                    raise SystemExit(f"{plan} {fmt}: {proc.stderr.strip()[-400:]}")
                got = json.loads(proc.stdout.strip().splitlines()[-1])
                size = 0 if out == os.devnull else Path(out).stat().st_size
                if out != os.devnull:
                    Path(out).unlink()
                rows.append((plan, fmt, got["peak_mib"], got["elapsed"], size))
                print(f"{plan} -o {fmt}: peak {got['peak_mib']:.0f} MiB, "
                      f"{got['elapsed']:.1f} s, output {size / 2**20:,.0f} MiB", flush=True)  # fmt: skip
    print("\n| plan | format | client peak RSS | time | output |")
    print("|---|---|---:|---:|---:|")
    for plan, fmt, peak, elapsed, size in rows:
        shown = "(/dev/null)" if plan.startswith("8") else f"{size / 2**20:,.0f} MiB"
        print(f"| {plan} | `{fmt}` | {peak:.0f} MiB | {elapsed:.0f} s | {shown} |")
    return 0


def shard_cost(ns: str, shards: int) -> dict[str, float]:
    argv = ["ip", "netns", "exec", ns, sys.executable, __file__, "--inner-shard-cost", str(shards)]
    proc = subprocess.run(argv, env=env(), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"shard cost run failed: {proc.stderr.strip()[-400:]}")
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-detect", action="store_true", help="scan without --detect")
    parser.add_argument("--markdown", action="store_true", help="print rows for docs")
    parser.add_argument("--inner-shard-cost", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--topology", choices=["loopback", "namespaces"], default="loopback")
    parser.add_argument("--rate", type=int, default=8000, help="probes/s (namespaces)")
    parser.add_argument("--max-workers", type=int, default=3, help="namespaces: 1..N workers")
    parser.add_argument(
        "--client-memory",
        metavar="PLAN[,PLAN]",
        help=f"the client's peak memory per output format, plans of {', '.join(CLIENT_PLANS)}",
    )
    parser.add_argument(
        "--formats", default="jsonl,grep,table,xml,json,html", help="--client-memory: formats"
    )
    parser.add_argument("--inner-client", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--inner-shard-cost-at", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--inner-breakdown", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--breakdown", action="store_true", help="where a shard's fixed cost goes (loopback)"
    )
    parser.add_argument(
        "--shard-costs-only", action="store_true", help="namespaces: skip the scans"
    )
    parser.add_argument(
        "--compare-src",
        metavar="DIR",
        help="namespaces: also measure the shard cost with the portkit in DIR (a src/);"
        " --client-memory: measure that portkit instead",
    )
    args = parser.parse_args()
    if args.inner_breakdown:
        print(json.dumps(asyncio.run(_breakdown())))
        return 0
    if args.inner_shard_cost_at:
        print(json.dumps(asyncio.run(_shard_cost_at(*args.inner_shard_cost_at))))
        return 0
    if args.inner_client:
        return _inner_client(*args.inner_client)
    if args.inner_shard_cost:
        print(json.dumps(asyncio.run(_shard_cost(args.inner_shard_cost))))
        return 0
    if os.geteuid() != 0 or shutil.which("ip") is None:
        print("bench/cluster.py needs root and iproute2 (a network namespace)", file=sys.stderr)
        return 2
    if args.breakdown:
        with namespace("pk-cluster-bench-") as ns:
            argv = ["ip", "netns", "exec", ns, sys.executable, __file__, "--inner-breakdown"]
            proc = subprocess.run(argv, env=env(), capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise SystemExit(f"breakdown failed: {proc.stderr.strip()[-400:]}")
        for key, value in json.loads(proc.stdout.strip().splitlines()[-1]).items():
            print(f"{key}: {value:.2f}")
        return 0
    if args.client_memory:
        src = ROOT / "src" if args.compare_src is None else Path(args.compare_src).resolve()
        return client_memory(args.client_memory.split(","), args.formats.split(","), src)
    if args.topology == "namespaces":
        rounds = 0 if args.shard_costs_only else args.rounds
        compare = None if args.compare_src is None else Path(args.compare_src).resolve()
        return topology_bench(rounds, args.rate, args.max_workers, args.markdown, compare)
    detect = [] if args.no_detect else ["--detect"]
    big = ["127.0.0.1-16", "-p", "1-1000", *detect]
    trivial = ["127.0.0.1", "-p", "22"]
    rows: list[tuple[str, float, float, float]] = []
    with contextlib.ExitStack() as stack:
        ns = stack.enter_context(namespace("pk-cluster-bench-"))
        stack.enter_context(services(ns))
        times: dict[str, list[float]] = {
            k: [] for k in ("one", "two", "running", "t-one", "t-two", "t-running")
        }
        address = stack.enter_context(running_cluster(ns))
        for rnd in range(args.rounds):
            runs = [
                ("one", big),
                ("two", [*big, "--workers", "2"]),
                ("running", [*big, "--cluster", address]),
            ]
            reports = {}
            for key, argv in runs if rnd % 2 == 0 else runs[::-1]:
                elapsed, reports[key] = run_scan(ns, argv)
                times[key].append(elapsed)
            for key in ("two", "running"):
                if findings(reports["one"]) != findings(reports[key]):
                    raise SystemExit(f"round {rnd}: the cluster ({key}) found something else")
            if {(h, p) for h, p, _s, _i in findings(reports["one"])} != expected_open():
                raise SystemExit(f"round {rnd}: open ports differ from the services")
            for key, argv in (
                ("t-one", trivial),
                ("t-two", [*trivial, "--workers", "2"]),
                ("t-running", [*trivial, "--cluster", address]),
            ):
                times[key].append(run_scan(ns, argv)[0])
            print(f"round {rnd}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()))
        label = "with --detect" if detect else "without --detect"
        med = {k: statistics.median(v) for k, v in times.items()}
        rows.append((f"16 hosts x 1,000 ports {label}", med["one"], med["two"], med["running"]))
        rows.append(("1 host x 1 port (fixed cost)", med["t-one"], med["t-two"], med["t-running"]))
        cost = shard_cost(ns, 200)
    per_shard = (cost["sharded"] - cost["direct"]) / cost["shards"]
    for title, a, b, c in rows:
        print(
            f"{title}: one process {a:.2f} s, --workers 2 {b:.2f} s (x{b / a:.2f}), "
            f"--cluster (2 workers already running) {c:.2f} s (x{c / a:.2f})"
        )
    print(
        f"per shard: {cost['shards']:.0f} one-probe shards on 2 workers took "
        f"{cost['sharded']:.3f} s vs {cost['direct']:.3f} s in one local scan: "
        f"{per_shard * 1000:.1f} ms of overhead per shard"
    )
    if args.markdown:
        print("\n| scenario | one process | --workers 2 | ratio | --cluster (running) | ratio |")
        print("|---|---:|---:|---:|---:|---:|")
        for title, a, b, c in rows:
            print(f"| {title} | {a:.2f} s | {b:.2f} s | {b / a:.2f} | {c:.2f} s | {c / a:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
