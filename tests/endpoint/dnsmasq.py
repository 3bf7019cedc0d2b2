"""A real DNS server for SRV tests: dnsmasq on 127.0.0.1, answering for example.test only."""

from __future__ import annotations

import os
import select
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass

DNSMASQ = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
READY_TIMEOUT = 10.0

#: The SRV records the server holds: (name, target, port, priority, weight).
SRV_RECORDS = [
    ("_imaps._tcp.example.test", "mail.example.test", 993, 10, 5),
    ("_imaps._tcp.example.test", "backup.example.test", 1993, 20, 1),
    ("_imaps._tcp.example.test", "mail2.example.test", 993, 10, 50),
    ("_submissions._tcp.example.test", "smtp.example.test", 465, 0, 0),
]


@dataclass(frozen=True)
class DnsServer:
    host: str
    port: int


def free_port() -> int:
    # dnsmasq cannot take an inherited socket, so find a port free for both UDP and TCP.
    # A free UDP port's TCP twin may be taken (by another test's connection, say): try
    # another, a bounded number of times.
    for _ in range(50):
        with (
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp,
            socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp,
        ):
            udp.bind(("127.0.0.1", 0))
            port: int = udp.getsockname()[1]
            try:
                tcp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise OSError("no port on 127.0.0.1 is free for both UDP and TCP after 50 tries")


def start(port: int) -> subprocess.Popen[bytes] | None:
    args = [
        DNSMASQ,
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--no-resolv",  # never forward anywhere: only locally-known names are answered
        "--no-hosts",
        "--no-poll",
        "--pid-file=",
        "--log-facility=-",
        "--listen-address=127.0.0.1",
        "--bind-interfaces",
        f"--port={port}",
        "--local=/example.test/",
    ]
    if os.geteuid() == 0:
        args.append("--user=root")
    args += [f"--srv-host={n},{t},{p},{pr},{w}" for n, t, p, pr, w in SRV_RECORDS]
    proc = subprocess.Popen(
        args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + READY_TIMEOUT
    output = b""
    # dnsmasq logs "started" once its listening sockets exist: the ready signal.
    while b"started, version" not in output:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or proc.poll() is not None:
            break
        readable, _, _ = select.select([proc.stderr], [], [], remaining)
        if readable:
            chunk = os.read(proc.stderr.fileno(), 4096)
            if not chunk:
                break
            output += chunk
    if b"started, version" in output and proc.poll() is None:
        return proc
    stop(proc)
    if b"Address already in use" in output:
        return None  # lost the race for the port; the caller tries another
    raise RuntimeError(f"dnsmasq did not start: {output.decode(errors='replace')}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stderr is not None:
        proc.stderr.close()
