"""The first scan after an install identifies its ports (regression: it once lost them).

With no names kept on disk (``XDG_CACHE_HOME`` pointing at an empty directory), the
scan built its port names in a process forked once the event loop and its sockets
existed; that process shared the loop's epoll set and descriptors, and the first port
handed to identification failed with "cannot connect ...: No such file or directory".
A UDP port in the list made it happen on every run. These tests run the command as a
user does, in a fresh interpreter, against a real listener.
"""

from __future__ import annotations

import json
import os
import socket
import socketserver
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parents[2] / "src")
BANNER = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"


class _Greeter(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.sendall(BANNER)
        self.request.settimeout(5)
        try:
            while self.request.recv(4096):  # until the client leaves
                pass
        except OSError:
            pass  # the identifier hung up or timed out: nothing to answer


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture
def ssh_port() -> Iterator[int]:
    with _Server(("127.0.0.1", 0), _Greeter) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield server.server_address[1]
        finally:
            server.shutdown()
            thread.join(5)


def _closed_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("with_udp", [False, True], ids=["tcp", "tcp+udp"])
def test_detection_identifies_the_port_cold_or_warm(
    names_cache: str, ssh_port: int, with_udp: bool
) -> None:
    spec = f"T:{ssh_port},U:{_closed_udp_port()}" if with_udp else str(ssh_port)
    env = {**os.environ, "PYTHONPATH": SRC}
    argv = ["scan", "127.0.0.1", "-p", spec, "--detect", "--timeout", "0.3", "-o", "json"]
    proc = subprocess.run(
        [sys.executable, "-m", "portkit", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    (host,) = json.loads(proc.stdout)["hosts"]
    (tcp,) = [p for p in host["ports"] if p["transport"] == "tcp"]
    assert tcp["state"] == "open"
    assert tcp["identified"]["service"] == "ssh", tcp["identified"]
    assert tcp["identified"]["product"] == "OpenSSH"
    if names_cache == "warm":  # the kept tables were read, not rebuilt elsewhere
        kept = sorted(
            p.name.split("-")[2] for p in Path(env["XDG_CACHE_HOME"], "portkit").glob("*.txt")
        )
        assert kept == ["tcp", "udp"]
