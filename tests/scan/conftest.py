"""Real listeners on loopback for the scan tests, and network namespaces (root only)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from bench._netns import namespace


@dataclass(frozen=True)
class Listener:
    host: str
    port: int


def _listen(host: str, backlog: int = 16) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.bind((host, 0))
    sock.listen(backlog)  # listening now: the kernel completes handshakes from here on
    return sock


@pytest.fixture
def listeners() -> Iterator[list[Listener]]:
    """Two listeners on 127.0.0.2, one on 127.0.0.3, one on ::1."""
    socks = [_listen(h) for h in ("127.0.0.2", "127.0.0.2", "127.0.0.3", "::1")]
    try:
        yield [Listener(s.getsockname()[0], s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.fixture
def free_ports() -> list[int]:
    """Ports that were free on 127.0.0.2 a moment ago (bound, then closed)."""
    socks = []
    for _ in range(5):
        s = socket.socket()
        s.bind(("127.0.0.2", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None, reason="needs root and iproute2 (ip netns)"
)


@pytest.fixture
def netns() -> Iterator[str]:
    """A fresh network namespace ``pk-scan-*`` with loopback up, always deleted."""
    with namespace("pk-scan-t") as name:
        yield name


def drop_tcp_port(namespace: str, port: int) -> None:
    """Drop every TCP segment to ``port`` inside ``namespace`` (nftables), or skip."""
    if shutil.which("nft") is None:
        pytest.skip("needs nft (nftables, see scripts/install-system-deps.sh) to drop packets")
    rules = (
        "table inet pkscan {\n"
        f"  chain input {{ type filter hook input priority 0; tcp dport {port} drop; }}\n"
        "}\n"
    )
    subprocess.run(
        ["ip", "netns", "exec", namespace, "nft", "-f", "-"], input=rules, text=True, check=True
    )


def run_in_namespace(namespace: str, code: str, *args: str) -> str:
    """Run Python ``code`` inside ``namespace`` with portkit importable; return stdout.

    Large scans run there: the machine's own loopback is shared with whatever else
    runs on it, whose listeners would come and go in the middle of the test.
    """
    import sys

    proc = subprocess.run(
        ["ip", "netns", "exec", namespace, sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
        env={"PYTHONPATH": ":".join(sys.path), "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture(params=["cold", "warm"])
def names_cache(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The first scan after an install (``cold``: no kept names, no registry loaded) or a later one.

    A detection test that uses this runs twice. Cold is the case that once lost the first
    port to identification: the scan's names were then built in a process forked beside
    the event loop. ``XDG_CACHE_HOME`` (where a user's cache is) points at the test's own
    directory, for subprocesses too.
    """
    from portkit.registry import reset_default_registry
    from portkit.scan._names import expected_names

    cache = tmp_path_factory.mktemp(f"names-{request.param}")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(cache))
        patch.delenv("PORTKIT_CACHE_DIR", raising=False)  # it would win over XDG_CACHE_HOME
        if request.param == "warm":
            for transport in ("tcp", "udp"):
                expected_names(transport)  # builds and keeps the whole table
        # Either way this process starts without the registry, as a fresh `portkit scan`.
        reset_default_registry()
        try:
            yield str(request.param)
        finally:
            reset_default_registry()
