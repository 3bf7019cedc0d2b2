#!/usr/bin/env python3
"""Throughput of `portkit connect` side by side with socat, on loopback, in one run.

Two transfers of the same file through each client, against the same servers:
upload (the client's stdin to a socat server that discards it) and download (a
server that sends the file with sendfile(2), to the client's stdout, discarded; the
server checks every byte was sent). Each is run --rounds times; the
table shows the median MB/s and the ratio of portkit to socat.

Usage: python bench/connect.py [--size-mb N] [--rounds N]
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


def timed(command: list[str], stdin_path: str | None) -> float:
    """Run ``command`` once; stdin from ``stdin_path``, or a pipe left open when None."""
    start = time.perf_counter()
    if stdin_path is None:
        # Left open: the client ends when the server closes, as a listener would.
        proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
        proc.wait()
        assert proc.stdin is not None
        proc.stdin.close()
        if proc.returncode != 0:
            raise SystemExit(f"{command[0]} failed with status {proc.returncode}")
    else:
        with open(stdin_path, "rb") as stdin:
            subprocess.run(command, stdin=stdin, stdout=subprocess.DEVNULL, check=True)
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    size_mb = max(1, min(args.size_mb, 2048))  # bounded
    rounds = max(1, min(args.rounds, 50))
    socat = shutil.which("socat")
    if socat is None:
        print("socat is needed (scripts/install-system-deps.sh installs it)", file=sys.stderr)
        return 1
    env_portkit = portkit_command()
    os.environ.setdefault("PYTHONPATH", str(ROOT / "src"))

    with tempfile.TemporaryDirectory(prefix="portkit-bench-") as tmp:
        data = Path(tmp) / "data.bin"
        with data.open("wb") as f:
            block = os.urandom(1 << 20)
            for _ in range(size_mb):
                f.write(block)
        results: dict[tuple[str, str], float] = {}

        upload_port = free_port()
        with socat_server("OPEN:/dev/null", upload_port):
            clients = {
                "portkit connect": [*env_portkit, "connect", "-q", f"127.0.0.1:{upload_port}"],
                "socat": [socat, "-u", "STDIN", f"TCP:127.0.0.1:{upload_port}"],
            }
            for name, command in clients.items():
                times = [timed(command, str(data)) for _ in range(rounds)]
                results[("upload", name)] = size_mb / statistics.median(times)

        server = SendfileServer(data)
        try:
            clients = {
                "portkit connect": [*env_portkit, "connect", "-q", f"127.0.0.1:{server.port}"],
                "socat": [socat, "-u", f"TCP:127.0.0.1:{server.port}", "STDOUT"],
            }
            for name, command in clients.items():
                before = server.complete
                times = [timed(command, None) for _ in range(rounds)]
                if server.complete - before != rounds:
                    raise SystemExit(f"{name}: a download ended before the whole file was sent")
                results[("download", name)] = size_mb / statistics.median(times)
        finally:
            server.close()

    print(f"{size_mb} MB over loopback, median of {rounds} rounds (MB/s, higher is better)")
    print(f"{'transfer':<10}{'portkit connect':>17}{'socat':>10}{'portkit/socat':>15}")
    for transfer in ("upload", "download"):
        ours, theirs = results[(transfer, "portkit connect")], results[(transfer, "socat")]
        print(f"{transfer:<10}{ours:>17.0f}{theirs:>10.0f}{ours / theirs:>15.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
