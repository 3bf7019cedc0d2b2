"""Benchmark `portkit serve` against its peers, side by side in one run, on loopback only.

1. Static files under wrk: the ``web`` application (default settings: one worker process
   per core), the same with ``workers = 1``, a bare aiohttp static-file app and nginx (one
   worker per core), all serving the same directory (requests/s and p99 latency, per file
   size).
2. TCP forwarding: the ``forward`` application vs socat (throughput of one large transfer,
   and connections/s for short request/response connections).

Every server binds 127.0.0.1; every load is bounded in time or count. Run from the
repository root:

    PYTHONPATH=src python bench/serve.py [--duration 10] [--connections 64] [--rounds 3]
    PYTHONPATH=src python bench/serve.py --static-only      # part 1 only
    PYTHONPATH=src python bench/serve.py --idle 10000       # RSS with idle keep-alive conns

Figures go in docs/benchmarks.md ("## Serve").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
ENV = {**os.environ, "PYTHONPATH": str(REPO / "src")}
FILES = {"1k.html": 1024, "64k.bin": 64 * 1024}
TRANSFER = 2 * 1024**3  # bytes pushed through each forwarder
CONN_COUNT = 3000  # short connections through each forwarder
CONN_CONCURRENCY = 16


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes] | None = None, timeout: float = 30) -> None:
    """Wait until something accepts on 127.0.0.1:port (the peers have no ready signal)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after {timeout}s")


@contextlib.contextmanager
def running(args: list[str], port: int, **kwargs: object) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs)  # type: ignore[call-overload]
    try:
        wait_port(port, proc)
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wrk(url: str, duration: int, connections: int) -> tuple[float, float]:
    """Run wrk; return (requests/s, p99 latency in ms)."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    p99 = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    return rps, p99


BARE_AIOHTTP = textwrap.dedent(
    """
    import sys, asyncio, uvloop
    from aiohttp import web
    app = web.Application()
    app.router.add_static("/", sys.argv[1])
    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[2]), access_log=None, print=None)
    """
)

NGINX = textwrap.dedent(
    """
    worker_processes auto;  # one worker per core, as deployed
    daemon off;
    pid {tmp}/nginx.pid;
    error_log {tmp}/nginx.err;
    events {{ worker_connections 1024; }}
    http {{
        access_log off;
        sendfile on;
        client_body_temp_path {tmp}/body;
        proxy_temp_path {tmp}/proxy;
        fastcgi_temp_path {tmp}/fastcgi;
        uwsgi_temp_path {tmp}/uwsgi;
        scgi_temp_path {tmp}/scgi;
        types {{ text/html html; application/octet-stream bin; }}
        server {{
            listen 127.0.0.1:{port};
            root {root};
        }}
    }}
    """
)


def bench_static(
    tmp: Path, duration: int, connections: int, rounds: int
) -> list[tuple[str, str, float, float]]:
    root = tmp / "files"
    root.mkdir()
    for name, size in FILES.items():
        (root / name).write_bytes(b"x" * size)
    rows = []
    servers = {}
    p1, p2, p3 = free_port(), free_port(), free_port()
    config = tmp / "serve.toml"
    config.write_text(
        f'[apps.web]\nkind = "web"\nlisten = "127.0.0.1:{p1}"\nroot = "{root}"\n'
        f"max_connections = 10000\n"
    )
    servers["portkit web"] = (
        [PY, "-m", "portkit", "serve", str(config), "--status-file", str(tmp / "s.json")],
        p1,
    )
    # The same with one process (workers = 1): what the worker processes add.
    p4 = free_port()
    one = tmp / "one.toml"
    one.write_text(
        f'[apps.web]\nkind = "web"\nlisten = "127.0.0.1:{p4}"\nroot = "{root}"\n'
        f"max_connections = 10000\nworkers = 1\n"
    )
    servers["portkit 1 proc"] = (
        [PY, "-m", "portkit", "serve", str(one), "--status-file", str(tmp / "s1.json")],
        p4,
    )
    servers["bare aiohttp"] = ([PY, "-c", BARE_AIOHTTP, str(root), str(p2)], p2)
    if shutil.which("nginx"):
        (tmp / "nginx.conf").write_text(NGINX.format(tmp=tmp, port=p3, root=root))
        servers["nginx"] = (["nginx", "-c", str(tmp / "nginx.conf"), "-p", str(tmp)], p3)
    with contextlib.ExitStack() as stack:
        for args, port in servers.values():
            stack.enter_context(running(args, port, env=ENV))
        # All servers run at once; wrk visits them in turn, `rounds` times, so a change in
        # the machine's load hits every server alike. The median of the rounds is reported.
        for name in FILES:
            samples: dict[str, list[tuple[float, float]]] = {label: [] for label in servers}
            for _args, port in servers.values():
                wrk(f"http://127.0.0.1:{port}/{name}", 1, connections)  # warm-up
            for _ in range(rounds):
                for label, (_args, port) in servers.items():
                    samples[label].append(
                        wrk(f"http://127.0.0.1:{port}/{name}", duration, connections)
                    )
            if "nginx" in samples:
                # Paired: each round's ratio comes from runs a few seconds apart.
                for label in ("portkit web", "portkit 1 proc"):
                    ratios = [
                        mine / theirs
                        for (mine, _), (theirs, _) in zip(
                            samples[label], samples["nginx"], strict=True
                        )
                    ]
                    shown = " ".join(f"{r:.2f}" for r in ratios)
                    print(
                        f"  {label} / nginx, {name}, per round: {shown}"
                        f" (median {statistics.median(ratios):.2f}x)",
                        flush=True,
                    )
            for label, runs in samples.items():
                rps = statistics.median(r for r, _ in runs)
                p99 = statistics.median(p for _, p in runs)
                rows.append((label, name, rps, p99))
                print(f"  {label:14} {name:9} {rps:10.0f} req/s  p99 {p99:7.2f} ms", flush=True)
    return rows


# -- idle keep-alive connections --------------------------------------------------------


def rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` and its children (VmRSS from /proc)."""
    pids = [pid]
    with contextlib.suppress(OSError):
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    total = 0
    for one in pids:
        for line in Path(f"/proc/{one}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


def bench_idle(tmp: Path, count: int) -> tuple[int, int]:
    """Open ``count`` keep-alive connections to the web application, one request each, then
    leave them idle; return (RSS before, RSS with them all open) of the serving process."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, count + 1000)), hard))
    root = tmp / "idle"
    root.mkdir()
    (root / "1k.html").write_bytes(b"x" * 1024)
    port = free_port()
    config = tmp / "idle.toml"
    # Only the limits that would refuse the test's own connections are raised.
    config.write_text(
        f'[apps.web]\nkind = "web"\nlisten = "127.0.0.1:{port}"\nroot = "{root}"\n'
        f"max_connections = {count + 100}\nper_source = {count + 100}\n"
    )
    args = [PY, "-m", "portkit", "serve", str(config), "--status-file", str(tmp / "i.json")]
    with running(args, port, env=ENV) as proc:
        time.sleep(0.5)
        before = rss_bytes(proc.pid)
        request = f"GET /1k.html HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
        socks = []
        try:
            deadline = time.monotonic() + 12  # inside keepalive_timeout (15 s) of the first
            for _ in range(count):
                s = socket.create_connection(("127.0.0.1", port))
                s.sendall(request)
                socks.append(s)
                if time.monotonic() > deadline:
                    break
            for s in socks:  # every answer read: the connections are idle, kept alive
                got = b""
                while not got.endswith(b"x" * 16):
                    got += s.recv(4096)
            during = rss_bytes(proc.pid)
            print(
                f"  {len(socks)} idle keep-alive connections: RSS {before / 1e6:.0f} MB "
                f"-> {during / 1e6:.0f} MB",
                flush=True,
            )
        finally:
            for s in socks:
                s.close()
    return before, during


# -- forwarding --------------------------------------------------------------------------

BACKEND = textwrap.dedent(
    """
    import socket, sys, threading
    # port A: sends N bytes to each client then closes; port B: echoes.
    def blast(conn, n):
        buf = memoryview(b"\\0" * (1 << 20))
        with conn:
            while n > 0:
                k = conn.send(buf[: min(n, len(buf))])
                n -= k
    def echo(conn):
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)
    def serve(port, target, *extra):
        s = socket.create_server(("127.0.0.1", port), backlog=1024)
        while True:
            conn, _ = s.accept()
            threading.Thread(target=target, args=(conn, *extra), daemon=True).start()
    a, b, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    threading.Thread(target=serve, args=(a, blast, n), daemon=True).start()
    serve(b, echo)
    """
)


def pull(port: int, total: int) -> float:
    """Receive ``total`` bytes from 127.0.0.1:port; return bytes/s."""
    buf = bytearray(1 << 20)
    got = 0
    start = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as s:
        while got < total:
            n = s.recv_into(buf)
            if not n:
                break
            got += n
    elapsed = time.perf_counter() - start
    if got != total:
        raise RuntimeError(f"received {got} of {total} bytes")
    return got / elapsed


async def _connections(port: int, count: int, concurrency: int) -> float:
    done = 0

    async def worker() -> None:
        nonlocal done
        while done < count:
            done += 1
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"ping\n")
            assert await reader.readexactly(5) == b"ping\n"
            writer.close()
            await writer.wait_closed()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return count / (time.perf_counter() - start)


def bench_forward(tmp: Path) -> list[tuple[str, float, float]]:
    blast_port, echo_port = free_port(), free_port()
    rows = []
    with running([PY, "-c", BACKEND, str(blast_port), str(echo_port), str(TRANSFER)], echo_port):
        wait_port(blast_port)  # both backend ports are up
        pk_blast, pk_echo, so_blast, so_echo = (free_port() for _ in range(4))
        config = tmp / "fwd.toml"
        config.write_text(
            f'[apps.blast]\nkind = "forward"\nlisten = "127.0.0.1:{pk_blast}"\nto = "127.0.0.1:{blast_port}"\n'
            f'[apps.echo]\nkind = "forward"\nlisten = "127.0.0.1:{pk_echo}"\nto = "127.0.0.1:{echo_port}"\n'
            "max_connections = 10000\n"
        )
        peers = {
            "portkit forward": [
                (
                    [
                        PY,
                        "-m",
                        "portkit",
                        "serve",
                        str(config),
                        "--status-file",
                        str(tmp / "f.json"),
                    ],
                    pk_echo,
                )
            ],
            "socat": [
                (
                    [
                        "socat",
                        f"TCP-LISTEN:{so_blast},bind=127.0.0.1,reuseaddr,fork,backlog=1024",
                        f"TCP:127.0.0.1:{blast_port}",
                    ],
                    so_blast,
                ),
                (
                    [
                        "socat",
                        f"TCP-LISTEN:{so_echo},bind=127.0.0.1,reuseaddr,fork,backlog=1024",
                        f"TCP:127.0.0.1:{echo_port}",
                    ],
                    so_echo,
                ),
            ],
        }
        ports = {"portkit forward": (pk_blast, pk_echo), "socat": (so_blast, so_echo)}
        for label, commands in peers.items():
            with contextlib.ExitStack() as stack:
                for args, port in commands:
                    stack.enter_context(running(args, port, env=ENV))
                blast, echo = ports[label]
                wait_port(blast)
                throughput = pull(blast, TRANSFER)
                rate = asyncio.run(_connections(echo, CONN_COUNT, CONN_CONCURRENCY))
                rows.append((label, throughput, rate))
                print(f"  {label:16} {throughput / 1e9:6.2f} GB/s  {rate:8.0f} conn/s", flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections")
    parser.add_argument("--rounds", type=int, default=3, help="wrk runs per server (median)")
    parser.add_argument("--static-only", action="store_true", help="skip the forwarding part")
    parser.add_argument("--idle", type=int, default=0, help="only: RSS with this many idle conns")
    args = parser.parse_args()
    for tool in ("wrk", "socat"):
        if not shutil.which(tool):
            print(f"bench/serve.py needs {tool}", file=sys.stderr)
            return 2
    with tempfile.TemporaryDirectory(prefix="pk-bench-serve-") as tmp_text:
        tmp = Path(tmp_text)
        os.chmod(tmp, 0o755)
        if args.idle:
            bench_idle(tmp, args.idle)
            return 0
        print(
            f"static files, wrk -t1 -c{args.connections} -d{args.duration}s, "
            f"median of {args.rounds} interleaved rounds, loopback:"
        )
        static = bench_static(tmp, args.duration, args.connections, args.rounds)
        forward = []
        if not args.static_only:
            print("forwarding, loopback:")
            forward = bench_forward(tmp)
    print("\nratios (portkit / peer):")
    by = {(label, name): (rps, p99) for label, name, rps, p99 in static}
    for name in FILES:
        mine = by[("portkit web", name)]
        for peer in ("bare aiohttp", "nginx"):
            if (peer, name) in by:
                theirs = by[(peer, name)]
                print(
                    f"  {name:9} vs {peer:13} req/s {mine[0] / theirs[0]:5.2f}x"
                    f"   p99 {mine[1] / theirs[1]:5.2f}x"
                )
    if not forward:
        return 0
    fw = {label: (tp, rate) for label, tp, rate in forward}
    pk, so = fw["portkit forward"], fw["socat"]
    print(f"  forward vs socat     throughput {pk[0] / so[0]:5.2f}x   conn/s {pk[1] / so[1]:5.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
