#!/usr/bin/env python3
"""Throughput of `portkit connect` side by side with socat, on loopback, in one run.

Two transfers of the same file through each client, against the same servers:
upload (the client's stdin to a socat server that discards it) and download (a
server that sends the file with sendfile(2), to the client's stdout, discarded; the
server checks every byte was sent). Each is run --rounds times; the
table shows the median MB/s and the ratio of portkit to socat.

With ``--baseline DIR`` (another checkout, e.g. the main branch), that tree's
``portkit connect`` runs too (``python -m portkit`` with ``PYTHONPATH=DIR/src``, as this
tree's then is), the clients taking turns round by round, so that both meet the same load.

Usage: python bench/connect.py [--size-mb N] [--rounds N] [--baseline DIR]
Loopback only; the servers are stopped and the file removed at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT = 10.0


def portkit_command() -> list[str]:
    script = Path(sys.executable).with_name("portkit")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "portkit"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@contextmanager
def socat_server(address: str, port: int) -> Iterator[None]:
    """Run ``socat -u TCP-LISTEN:port <address>`` (a sink) until the block ends."""
    socat = shutil.which("socat")
    assert socat is not None
    listen = f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork"
    args = (
        [socat, "-u", listen, address]
        if address.startswith("OPEN:/dev/null")
        else [
            socat,
            "-u",
            address,
            listen,
        ]
    )
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while True:  # ready when it accepts: the listener exists
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"socat server on port {port} did not start")
            time.sleep(0.02)
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def timed(command: list[str], stdin_path: str | None, env: dict[str, str] | None = None) -> float:
    """Run ``command`` once; stdin from ``stdin_path``, or a pipe left open when None."""
    start = time.perf_counter()
    if stdin_path is None:
        # Left open: the client ends when the server closes, as a listener would.
        proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env)
        proc.wait()
        assert proc.stdin is not None
        proc.stdin.close()
        if proc.returncode != 0:
            raise SystemExit(f"{command[0]} failed with status {proc.returncode}")
    else:
        with open(stdin_path, "rb") as stdin:
            subprocess.run(command, stdin=stdin, stdout=subprocess.DEVNULL, check=True, env=env)
    return time.perf_counter() - start


class SendfileServer:
    """A loopback server that sends ``path`` (zero-copy) to each client, then closes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen()
        self.port: int = self.listener.getsockname()[1]
        self.complete = 0  # transfers that sent every byte
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        size = self.path.stat().st_size
        with self.path.open("rb") as f:
            while True:
                try:
                    conn, _ = self.listener.accept()
                except OSError:
                    return  # closed: the benchmark is over
                with conn:
                    f.seek(0)
                    try:
                        if conn.sendfile(f) == size:
                            self.complete += 1
                    except OSError as exc:
                        print(f"download server: {exc}", file=sys.stderr)

    def close(self) -> None:
        self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self.thread.join(timeout=10)


Client = tuple[list[str], "dict[str, str] | None"]


def interleaved(
    clients: dict[str, Client], stdin_path: str | None, rounds: int
) -> dict[str, float]:
    """Each client's median seconds over ``rounds``, the clients taking turns each round."""
    times: dict[str, list[float]] = {name: [] for name in clients}
    for _ in range(rounds):
        for name, (command, env) in clients.items():
            times[name].append(timed(command, stdin_path, env))
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--baseline", type=Path, metavar="DIR", help="also run the portkit of this checkout"
    )
    args = parser.parse_args()
    size_mb = max(1, min(args.size_mb, 2048))  # bounded
    rounds = max(1, min(args.rounds, 50))
    socat = shutil.which("socat")
    if socat is None:
        print("socat is needed (scripts/install-system-deps.sh installs it)", file=sys.stderr)
        return 1
    tmp = tempfile.mkdtemp(prefix="portkit-bench-")
    try:
        return _run(args, size_mb, rounds, socat, Path(tmp))
    finally:
        shutil.rmtree(tmp)


def _run(args: argparse.Namespace, size_mb: int, rounds: int, socat: str, tmp: Path) -> int:
    # Each tree keeps its registry index in a cache of its own: trees sharing one (the
    # user's, or another run's) would rebuild it for each other on every start. Bytecode
    # is written (by the warm-up run) whatever the caller's environment says, or a tree
    # without it would compile its modules on every start.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    trees: dict[str, Client] = {}
    if args.baseline is None:
        os.environ.setdefault("PYTHONPATH", str(ROOT / "src"))
        env = {**os.environ, "PORTKIT_CACHE_DIR": str(tmp / "cache")}
        trees["portkit connect"] = (portkit_command(), env)
    else:
        baseline = args.baseline.resolve() / "src"
        if not (baseline / "portkit").is_dir():
            print(f"--baseline {str(args.baseline)!r} holds no src/portkit", file=sys.stderr)
            return 2
        module = [sys.executable, "-m", "portkit"]
        for name, src in (("portkit connect", ROOT / "src"), ("baseline", baseline)):
            cache = str(tmp / f"cache-{len(trees)}")
            trees[name] = (
                module,
                {**os.environ, "PYTHONPATH": str(src), "PORTKIT_CACHE_DIR": cache},
            )

    data = tmp / "data.bin"
    with data.open("wb") as f:
        block = os.urandom(1 << 20)
        for _ in range(size_mb):
            f.write(block)
    results: dict[tuple[str, str], float] = {}

    upload_port = free_port()
    with socat_server("OPEN:/dev/null", upload_port):
        clients: dict[str, Client] = {
            name: ([*command, "connect", "-q", f"127.0.0.1:{upload_port}"], env)
            for name, (command, env) in trees.items()
        }
        clients["socat"] = ([socat, "-u", "STDIN", f"TCP:127.0.0.1:{upload_port}"], None)
        for warm_command, warm_env in clients.values():  # untimed: builds each index
            timed(warm_command, os.devnull, warm_env)
        for name, seconds in interleaved(clients, str(data), rounds).items():
            results[("upload", name)] = size_mb / seconds

    server = SendfileServer(data)
    try:
        clients = {
            name: ([*command, "connect", "-q", f"127.0.0.1:{server.port}"], env)
            for name, (command, env) in trees.items()
        }
        clients["socat"] = ([socat, "-u", f"TCP:127.0.0.1:{server.port}", "STDOUT"], None)
        before = server.complete
        for name, seconds in interleaved(clients, None, rounds).items():
            results[("download", name)] = size_mb / seconds
        if server.complete - before != rounds * len(clients):
            raise SystemExit("a download ended before the whole file was sent")
    finally:
        server.close()

    names = [*trees, "socat"]
    print(f"{size_mb} MB over loopback, median of {rounds} rounds (MB/s, higher is better)")
    print(f"{'transfer':<10}" + "".join(f"{name:>17}" for name in names) + "   /socat")
    for transfer in ("upload", "download"):
        figures = [results[(transfer, name)] for name in names]
        ratios = " ".join(f"{figure / figures[-1]:.2f}" for figure in figures[:-1])
        print(
            f"{transfer:<10}" + "".join(f"{figure:>17.0f}" for figure in figures) + f"   {ratios}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
