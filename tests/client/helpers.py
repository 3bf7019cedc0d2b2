"""Real peers for the client tests: listeners in child processes, echo and TLS servers."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

# A child process that binds the sockets it is told to, prints the port, and holds them
# until its stdin closes: a listener owned by a pid other than the test's.
_HOLDER = """
import socket, sys
kinds = sys.argv[1].split(",")
port = int(sys.argv[2])
held = []
for kind in kinds:
    family = socket.AF_INET6 if kind.endswith("6") else socket.AF_INET
    stype = socket.SOCK_STREAM if kind.startswith("tcp") else socket.SOCK_DGRAM
    s = socket.socket(family, stype)
    s.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", port))
    if stype == socket.SOCK_STREAM:
        s.listen()
    port = s.getsockname()[1]
    held.append(s)
print(port, flush=True)
sys.stdin.read()
for s in held:
    s.close()
"""


@contextmanager
def held_port(kinds: str = "tcp", port: int = 0) -> Iterator[tuple[int, int]]:
    """Hold a port in a child process; yield (port, pid) once it is bound.

    ``kinds`` is a comma list of ``tcp``, ``tcp6``, ``udp``, ``udp6``; the first binds
    ``port`` (0: any) and the others bind the same number.
    """
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, kinds, str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    try:
        line = proc.stdout.readline()  # the ready signal: printed after every bind
        assert line.strip().isdigit(), f"holder did not start: {line!r}"
        yield int(line), proc.pid
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
        proc.stdout.close()
