"""Scans across a real link: a scanner namespace and a target namespace joined by veth.

Loopback answers from the same kernel stack that sent the probe; across a veth pair the
target is a separate host as far as routing, neighbour discovery and nftables go. The
target holds 500 random listeners, 50 ports that accept and close at once, 20 TCP ports
dropped by nftables (10 with a listener behind the rule), and UDP echo services (some
dropped), on both 198.18.0.2 and fd00::2. Every round of both engines, over IPv4 and
over IPv6 (the SYN engine's IPv6 path included), must report exactly that.

The TCP rounds run with the default timing (1 s, 2 re-sends), as a user would: the waits
come from the measured round trips, so a dropped port costs 3 x 0.1 s, not 1 + 2 + 4 s,
and each round is about a second. The UDP scan keeps ``--timeout 0.25 --retries 1``: UDP
waits are not learnt from round trips (an application answers, as slowly as it likes), so
each dropped UDP port would cost the full 1 + 2 + 4 s. ``bench/scan.py --link veth`` runs
the same sweeps against nmap and checks every run's open set too.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from bench._netns import Link, TargetServices, random_services, veth_link

from .conftest import needs_root

ROUNDS = 10
FAST = ["--timeout", "0.25", "--retries", "1"]

pytestmark = [
    needs_root,
    pytest.mark.skipif(shutil.which("nft") is None, reason="needs nft (nftables) to drop ports"),
]


@pytest.fixture(scope="module")
def link() -> Iterator[Link]:
    # A fresh draw every run, printed on failure (the seed repeats it with random_services).
    seed = secrets.randbits(32)
    services = random_services(500, closers=50, dropped=20, udp=8, seed=seed)
    with veth_link(services, prefix="pk-lt-") as made:
        print(f"target services: random_services(500, closers=50, dropped=20, udp=8, seed={seed})")
        yield made


def run_portkit(link: Link, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``portkit scan ARGS`` inside the scanner namespace."""
    return subprocess.run(
        link.in_scanner(sys.executable, "-m", "portkit", "scan", *args),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PYTHONPATH": ":".join(sys.path), "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
    )


def portkit_json(link: Link, *args: str) -> dict[str, Any]:
    """Run ``portkit scan ARGS -o json`` inside the scanner namespace; return the report."""
    proc = run_portkit(link, *args, "-o", "json")
    assert proc.returncode == 0, proc.stderr
    report: dict[str, Any] = json.loads(proc.stdout)
    return report


def listed(host: dict[str, Any], transport: str, state: str) -> set[int]:
    return {p["port"] for p in host["ports"] if p["transport"] == transport and p["state"] == state}


def check_tcp_sweep(report: dict[str, Any], address: str, services: TargetServices) -> None:
    """The report of a ``-p-`` TCP scan says exactly what the target runs."""
    (host,) = report["hosts"]
    assert host["address"] == address
    counts = host["counts"]
    opened = listed(host, "tcp", "open")
    assert not opened - services.open_tcp, f"false opens: {sorted(opened - services.open_tcp)}"
    assert not services.open_tcp - opened, f"missed: {sorted(services.open_tcp - opened)}"
    assert not opened & services.dropped, f"dropped ports open: {sorted(opened & services.dropped)}"
    # Every dropped port is filtered (there are fewer than the report's listing limit, so
    # each is listed by number), and nothing else is.
    assert listed(host, "tcp", "filtered") == services.dropped
    assert counts == {
        "tcp/open": len(services.open_tcp),
        "tcp/filtered": len(services.dropped),
        "tcp/closed": 65535 - len(services.open_tcp) - len(services.dropped),
    }


IPV6_ROUNDS = 2  # the same sweeps; the family's own code paths, not the repetition


@pytest.mark.parametrize("engine", [[], ["--syn"]], ids=["connect", "syn"])
@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_every_round_finds_exactly_the_listeners(
    link: Link, family: str, engine: list[str]
) -> None:
    address = link.target_v4 if family == "ipv4" else link.target_v6
    rounds = ROUNDS if family == "ipv4" else IPV6_ROUNDS
    for round_ in range(rounds):
        report = portkit_json(link, address, "-p-", *engine)
        try:
            check_tcp_sweep(report, address, link.services)
        except AssertionError as exc:
            raise AssertionError(f"{family} round {round_ + 1} of {rounds}: {exc}") from exc


def test_udp_services_open_and_dropped_ones_silent(link: Link) -> None:
    services = link.services
    ports = sorted(services.udp | services.udp_dropped)
    report = portkit_json(link, link.target_v4, "-p", "U:" + ",".join(map(str, ports)), *FAST)
    (host,) = report["hosts"]
    # An echo service answers the probe (open); a dropped port never answers, which UDP
    # cannot tell from a silent service (open|filtered, RFC 768 has no handshake).
    assert listed(host, "udp", "open") == services.udp
    assert listed(host, "udp", "open|filtered") == services.udp_dropped
    assert host["counts"] == {
        "udp/open": len(services.udp),
        "udp/open|filtered": len(services.udp_dropped),
    }
