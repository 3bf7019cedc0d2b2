"""Resource attacks on `portkit serve`, side by side with nginx where it does the same job.

Reported per (attack, target): the peak memory of the server's processes while the attack
runs (every process of the server, sampled from ``/proc``) and how many legitimate
requests, made during the attack from another address, were served.

1. slow readers: ``SLOW`` clients from 127.0.0.1 ask for a 100 MB file and never read a
   byte; meanwhile ``LEGIT`` requests for a small file come from 127.0.0.2. portkit's
   ``web`` with ``max_connections = 200`` (one address gets half of that) against nginx
   with ``worker_connections 200``; both with their default send timeout (60 s), which
   the attack does not outlast: what keeps the other address served is the limit per
   source.
2. exec burst: ``BURST_EXEC`` clients connect at once to an exec application with
   ``instances = 3``: how many programs start (3 at most).
3. forward burst: ``BURST_FORWARD`` clients at once to a forward with
   ``max_connections = 5``: how many backend connections are ever open at once.
4. The mail attacks of ``bench/_attack_mail.py`` when that module is there.

Everything of 1-3 runs inside a fresh network namespace (only its own loopback, where
127.0.0.2 is loopback too) that is deleted afterwards; every attack is a fixed number of
connections with a deadline. Needs root (namespaces). Run from the repository root:

    python bench/attack.py [--rounds 1] [--json]

Figures go in docs/benchmarks.md ("## Attacks").
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench._netns import namespace  # noqa: E402

PY = sys.executable
ENV = {**os.environ, "PYTHONPATH": str(REPO / "src")}
SLOW = 300  # never-reading clients, from one address
LIMIT = 200  # web max_connections / nginx worker_connections
LEGIT = 10  # legitimate requests during an attack, from another address
LEGIT_TIMEOUT = 3.0  # seconds each legitimate request may take
HOLD = 5.0  # seconds the slow readers are held (well under either send timeout)
BURST_EXEC = 10
BURST_FORWARD = 50
DEADLINE = 60.0  # seconds any one attack may take
SAMPLE = 0.05  # seconds between memory samples

Row = dict[str, object]

NGINX = textwrap.dedent(
    """
    worker_processes 1;
    daemon off;
    pid {tmp}/nginx.pid;
    error_log {tmp}/nginx.err;
    events {{ worker_connections {limit}; }}
    http {{
        access_log off;
        sendfile on;
        client_body_temp_path {tmp}/body;
        proxy_temp_path {tmp}/proxy;
        fastcgi_temp_path {tmp}/fastcgi;
        uwsgi_temp_path {tmp}/uwsgi;
        scgi_temp_path {tmp}/scgi;
        types {{ text/plain txt; application/octet-stream bin; }}
        server {{
            listen 127.0.0.1:{port};
            root {root};
        }}
    }}
    """
)


# -- measuring --------------------------------------------------------------------------


def tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and all its descendants, in MB."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            for task in Path(f"/proc/{current}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
    return total / 1024


@contextlib.contextmanager
def peak_rss(pid: int) -> Iterator[list[float]]:
    """Sample the tree's memory while the block runs; the list's max is the peak."""
    samples = [tree_rss_mb(pid)]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(SAMPLE):
            samples.append(tree_rss_mb(pid))

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        done.set()
        thread.join()


def legit_get(port: int, path: str, source: str = "127.0.0.2") -> bool:
    """One GET with curl from ``source``; whether it was a 200 within LEGIT_TIMEOUT."""
    done = subprocess.run(
        [
            *("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--interface", source),
            *("--max-time", str(LEGIT_TIMEOUT), f"http://127.0.0.1:{port}{path}"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout == "200"


def wait_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after 30 s")


@contextlib.contextmanager
def running(args: list[str], port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run a server (its output to ``log``, never to a pipe nobody reads) while the block runs."""
    with log.open("wb") as out:
        proc = subprocess.Popen(args, env=ENV, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_port(port, proc)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def portkit(tmp: Path, config: str, port: int) -> contextlib.AbstractContextManager[Any]:
    path = tmp / "serve.toml"
    path.write_text(config)
    return running(
        [PY, "-m", "portkit", "serve", str(path), "--status-file", str(tmp / "s.json")],
        port,
        tmp / "serve.log",
    )


# -- attacks ----------------------------------------------------------------------------


def never_reading(port: int, count: int) -> list[socket.socket]:
    """``count`` clients from 127.0.0.1 asking for /big.bin, none of which reads."""
    clients = []
    for _ in range(count):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(10)
        try:
            sock.connect(("127.0.0.1", port))
            sock.sendall(b"GET /big.bin HTTP/1.1\r\nHost: attack\r\n\r\n")
        except OSError:
            sock.close()  # refused or reset at once: the server's choice
            continue
        clients.append(sock)
    return clients


def slow_readers(tmp: Path, target: str) -> Row:
    root = tmp / "public"
    root.mkdir(exist_ok=True)
    with (root / "big.bin").open("wb") as fh:
        fh.truncate(100 * 1024 * 1024)
    (root / "small.txt").write_text("served\n")
    port = 8080
    if target == "portkit":
        config = (
            f'[apps.web]\nkind = "web"\nlisten = "127.0.0.1:{port}"\nroot = "{root}"\n'
            f"max_connections = {LIMIT}\n"
        )
        server = portkit(tmp, config, port)
        limits = f"max_connections {LIMIT} (per source {LIMIT // 2})"
    else:
        (tmp / "nginx.conf").write_text(NGINX.format(tmp=tmp, port=port, root=root, limit=LIMIT))
        nginx = ["nginx", "-c", str(tmp / "nginx.conf"), "-p", str(tmp)]
        server = running(nginx, port, tmp / "nginx.log")
        limits = f"worker_connections {LIMIT}"
    with server as proc, peak_rss(proc.pid) as samples:
        started = time.monotonic()
        clients = never_reading(port, SLOW)
        try:
            ok = 0
            for _ in range(LEGIT):
                ok += legit_get(port, "/small.txt")
            time.sleep(max(0.0, HOLD - (time.monotonic() - started)))
        finally:
            for sock in clients:
                sock.close()
    return {
        "attack": "slow readers",
        "target": target,
        "peak_rss_mb": round(max(samples), 1),
        "legit_ok": ok,
        "legit_total": LEGIT,
        "note": f"{SLOW} never-reading clients of a 100 MB file from 127.0.0.1, {limits}; "
        "requests from 127.0.0.2",
    }


def burst(port: int, count: int) -> list[socket.socket]:
    """``count`` connections made back to back: they reach the server as one burst."""
    clients = []
    for _ in range(count):
        with contextlib.suppress(OSError):
            clients.append(socket.create_connection(("127.0.0.1", port), timeout=10))
    return clients


def settle(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)


def exec_burst(tmp: Path) -> Row:
    marks = tmp / "started"
    port = 7000
    argv = json.dumps(["/bin/sh", "-c", f'echo started >> "{marks}"; exec cat'])
    config = (
        f'[apps.run]\nkind = "exec"\nlisten = "127.0.0.1:{port}"\nargv = {argv}\ninstances = 3\n'
    )
    with portkit(tmp, config, port) as proc, peak_rss(proc.pid) as samples:
        settle(lambda: marks.exists())  # wait_port's own connection ran a program
        marks.unlink(missing_ok=True)
        clients = burst(port, BURST_EXEC)
        settle(lambda: marks.exists() and len(marks.read_text().split()) >= 3)
        time.sleep(0.5)  # an overshooting program would have started by now
        started = len(marks.read_text().split()) if marks.exists() else 0
        for sock in clients:
            sock.close()
        time.sleep(0.5)  # the programs see EOF and end
        # Once the burst has gone, a new client is served again.
        with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
            client.sendall(b"after\n")
            legit = client.recv(10) == b"after\n"
    return {
        "attack": "exec burst",
        "target": "portkit",
        "peak_rss_mb": round(max(samples), 1),
        "legit_ok": int(legit),
        "legit_total": 1,
        "note": f"{BURST_EXEC} clients at once, instances = 3: {started} programs started",
    }


def forward_burst(tmp: Path) -> Row:
    backend = socket.create_server(("127.0.0.1", 7100), backlog=1024)
    state = {"open": 0, "peak": 0}
    lock = threading.Lock()
    stop = threading.Event()

    def hold(conn: socket.socket) -> None:
        with conn:
            with lock:
                state["open"] += 1
                state["peak"] = max(state["peak"], state["open"])
            conn.settimeout(1)
            while not stop.is_set():
                try:
                    data = conn.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    break
                if not data:
                    break
                conn.sendall(data)
            with lock:
                state["open"] -= 1

    def accept() -> None:
        backend.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                conn, _ = backend.accept()
                threading.Thread(target=hold, args=(conn,), daemon=True).start()

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    port = 7001
    config = (
        f'[apps.fwd]\nkind = "forward"\nlisten = "127.0.0.1:{port}"\nto = "127.0.0.1:7100"\n'
        "max_connections = 5\nper_source = 5\n"
    )
    try:
        with portkit(tmp, config, port) as proc, peak_rss(proc.pid) as samples:
            settle(lambda: state["open"] == 0)
            state["peak"] = 0
            clients = burst(port, BURST_FORWARD)
            settle(lambda: state["open"] >= 5)
            time.sleep(0.5)  # an overshooting connection would have reached the backend
            peak = state["peak"]
            for sock in clients:
                sock.close()
            settle(lambda: state["open"] == 0)
            with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
                client.sendall(b"after\n")
                client.settimeout(10)
                legit = client.recv(10) == b"after\n"
    finally:
        stop.set()
        acceptor.join()
        backend.close()
    return {
        "attack": "forward burst",
        "target": "portkit",
        "peak_rss_mb": round(max(samples), 1),
        "legit_ok": int(legit),
        "legit_total": 1,
        "note": f"{BURST_FORWARD} clients at once, max_connections = 5: "
        f"{peak} backend connections at most",
    }


def inside(rounds: int) -> list[Row]:
    """Every attack of this module; run inside the namespace."""
    rows: list[Row] = []
    targets = ["portkit"] + (["nginx"] if shutil.which("nginx") else [])
    for _ in range(rounds):
        for target in targets:  # the same attack on each, one after the other
            with tempfile.TemporaryDirectory(prefix="pk-attack-") as tmp:
                rows.append(slow_readers(Path(tmp), target))
        with tempfile.TemporaryDirectory(prefix="pk-attack-") as tmp:
            rows.append(exec_burst(Path(tmp)))
        with tempfile.TemporaryDirectory(prefix="pk-attack-") as tmp:
            rows.append(forward_burst(Path(tmp)))
    return rows


def run_attacks(rounds: int) -> list[Row]:
    """The attacks of this module in a fresh namespace, then the mail attacks if present."""
    with namespace("pk-attack-") as ns:
        result = subprocess.run(
            ["ip", "netns", "exec", ns, PY, __file__, "--inside", str(rounds)],
            capture_output=True,
            text=True,
            timeout=DEADLINE * 10 * rounds,
            check=False,
        )
    if result.returncode != 0:
        raise RuntimeError(f"attacks failed: {result.stderr[-2000:]}")
    rows: list[Row] = json.loads(result.stdout)
    try:
        from bench._attack_mail import (  # type: ignore[import-not-found, unused-ignore]
            run_mail_attacks,
        )
    except ImportError:
        rows.append(
            {
                "attack": "mail attacks",
                "target": "-",
                "peak_rss_mb": "-",
                "legit_ok": "-",
                "legit_total": "-",
                "note": "unavailable: bench/_attack_mail.py is not in this tree",
            }
        )
    else:
        rows.extend(run_mail_attacks(rounds))
    return rows


def table(rows: list[Row]) -> str:
    lines = [
        "| attack | target | peak RSS MB | legitimate served | note |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['attack']} | {r['target']} | {r['peak_rss_mb']} | "
        f"{r['legit_ok']}/{r['legit_total']} | {r['note']} |"
        for r in rows
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=1, help="times each attack runs (1-5)")
    parser.add_argument("--json", action="store_true", help="rows as JSON")
    parser.add_argument("--inside", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside is not None:
        json.dump(inside(args.inside), sys.stdout)
        return 0
    if os.geteuid() != 0:
        print("bench/attack.py: needs root (network namespaces)", file=sys.stderr)
        return 2
    if not 1 <= args.rounds <= 5:
        print(f"bench/attack.py: --rounds must be 1-5, not {args.rounds}", file=sys.stderr)
        return 2
    rows = run_attacks(args.rounds)
    print(json.dumps(rows, indent=2) if args.json else table(rows))
    if not args.json and args.rounds > 1:
        peaks: dict[tuple[str, str], list[float]] = {}
        for row in rows:
            if isinstance(row["peak_rss_mb"], float | int):
                key = (str(row["attack"]), str(row["target"]))
                peaks.setdefault(key, []).append(float(row["peak_rss_mb"]))
        for (attack, target), values in sorted(peaks.items()):
            print(f"median peak RSS, {attack}, {target}: {statistics.median(values):.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
