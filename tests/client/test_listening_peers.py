"""listening_sockets() agrees with the tools people trust: ss (iproute2) and lsof."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from portkit.client import listening_sockets
from tests.client.helpers import held_port

KINDS = "tcp,udp,tcp6,udp6"


Row = tuple[str, str, int, int | None]  # transport, address, port, pid


def _ours_and_the_tools(tool: str, *argv: str) -> tuple[set[Row], str]:
    """Hold a port over TCP and UDP, IPv4 and IPv6; list it with listening_sockets() and
    with ``tool ARGV`` (``{port}`` in an argument is the port); return both listings."""
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed; scripts/install-system-deps.sh installs it")
    with held_port(KINDS) as (port, _):
        ours = {
            (s.transport, s.address, s.port, s.pid) for s in listening_sockets(port=port).sockets
        }
        text = subprocess.run(
            [path, *(arg.format(port=port) for arg in argv)],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
    return ours, text


def test_agrees_with_ss() -> None:
    ours, text = _ours_and_the_tools("ss", "-H", "-l", "-n", "-t", "-u", "-p", "sport = :{port}")
    theirs = set()
    for line in text.splitlines():
        # udp UNCONN 0 0 127.0.0.1:18901 0.0.0.0:* users:(("python3",pid=18695,fd=4))
        fields = line.split()
        address, _, local_port = fields[4].rpartition(":")
        pid = re.search(r"pid=(\d+)", line)
        theirs.add(
            (fields[0], address.strip("[]"), int(local_port), int(pid.group(1)) if pid else None)
        )
    assert len(theirs) == 4
    assert ours == theirs


def test_agrees_with_lsof() -> None:
    ours, text = _ours_and_the_tools("lsof", "-nP", "-i:{port}")
    theirs: set[Row] = set()
    for line in text.splitlines()[1:]:
        # python3 18695 root 3u IPv6 4192182 0t0 TCP [::1]:18901 (LISTEN)
        fields = line.split()
        address, _, local_port = fields[8].rpartition(":")
        theirs.add((fields[7].lower(), address.strip("[]"), int(local_port), int(fields[1])))
    assert len(theirs) == 4
    assert ours == theirs
