"""Both engines across a real link: two namespaces joined by a veth pair, over IPv6.

The scanner sits in one namespace (fd00::1), the target in the other (fd00::2), as a
remote computer would be: answers cross a link and the kernel's neighbour discovery,
not loopback. Both namespaces and the veth pair are this test's own, with random names.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import pytest
from bench._netns import namespace

from .conftest import drop_tcp_port, needs_root

SCANNER, TARGET = "fd00::1", "fd00::2"

LISTEN = """
import socket, sys
socks = []
for port in sys.argv[1:]:
    s = socket.socket(socket.AF_INET6); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("fd00::2", int(port))); s.listen(64); socks.append(s)
print("ready", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def link() -> Iterator[tuple[str, str]]:
    """(scanner's namespace, target's namespace), joined by a veth pair over IPv6."""
    suffix = secrets.token_hex(3)
    with ExitStack() as stack:
        near = stack.enter_context(namespace("pk-link-s"))
        far = stack.enter_context(namespace("pk-link-t"))
        a, b = f"pkv{suffix}a", f"pkv{suffix}b"
        commands = [
            [
                "ip",
                "link",
                "add",
                a,
                "netns",
                near,
                "type",
                "veth",
                "peer",
                "name",
                b,
                "netns",
                far,
            ],
            # nodad: usable at once, no duplicate address detection to wait for.
            ["ip", "-n", near, "addr", "add", f"{SCANNER}/64", "dev", a, "nodad"],
            ["ip", "-n", far, "addr", "add", f"{TARGET}/64", "dev", b, "nodad"],
            ["ip", "-n", near, "link", "set", a, "up"],
            ["ip", "-n", far, "link", "set", b, "up"],
        ]
        for command in commands:
            subprocess.run(command, check=True)
        for ns, device in ((near, a), (far, b)):
            wait_until_up(ns, device)
        # The veth pair lives in the namespaces and goes with them.
        yield near, far


def wait_until_up(ns: str, device: str, seconds: float = 10.0) -> None:
    """Wait for ``device``'s carrier (the ready signal of a veth end), at most ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        shown = subprocess.run(
            ["ip", "-n", ns, "-o", "link", "show", device],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        if "LOWER_UP" in shown and "state UP" in shown:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{device} in {ns} not up after {seconds} s: {shown}")
        time.sleep(0.01)


@contextmanager
def listeners(ns: str, ports: list[int]) -> Iterator[None]:
    """TCP listeners on ``TARGET`` inside ``ns`` while the block runs."""
    with subprocess.Popen(
        ["ip", "netns", "exec", ns, sys.executable, "-c", LISTEN, *map(str, ports)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdin is not None
        assert proc.stdout is not None
        try:
            assert proc.stdout.readline().strip() == "ready"  # every socket listens
            yield
        finally:
            proc.stdin.close()  # its end of input: it exits
            proc.wait(timeout=30)


def scan_json(ns: str, *args: str) -> dict[int, str]:
    """``portkit scan`` inside ``ns``: {port: state} of every port the report lists."""
    proc = subprocess.run(
        ["ip", "netns", "exec", ns, sys.executable, "-m", "portkit", "scan", *args, "-o", "json"],
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
        env={"PYTHONPATH": ":".join(sys.path), "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
    )
    assert proc.returncode == 0, proc.stderr
    document = json.loads(proc.stdout)
    return {p["port"]: p["state"] for host in document["hosts"] for p in host["ports"]}


@needs_root
@pytest.mark.root
@pytest.mark.parametrize("engine", [["--syn"], []], ids=["syn", "connect"])
def test_ipv6_scan_across_a_veth_link_finds_exactly_the_listeners(
    link: tuple[str, str], engine: list[str]
) -> None:
    near, far = link
    listening = sorted({22, 80, 443, *(secrets.randbelow(20000) + 20000 for _ in range(20))})
    dropped = 9  # nothing answers: nftables drops every segment to it
    drop_tcp_port(far, dropped)
    with listeners(far, listening):
        for _round in range(2):
            states = scan_json(
                near, TARGET, "-p", "1-1000,20000-40000", *engine, "--timeout", "300"
            )
            assert sorted(p for p, s in states.items() if s == "open") == listening
            assert states[dropped] == "filtered"
