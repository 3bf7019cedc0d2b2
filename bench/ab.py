"""Benchmark: two source trees of portkit against each other, paired, in a namespace.

For a change to the scan engines: runs the same scans with ``PYTHONPATH`` pointing at
a baseline tree (``--base``, e.g. ``git archive HEAD~3 src | tar -x -C /tmp/base``) and
at this checkout, alternating which goes first, and reports the median of each and
the median of the per-round ratios (this tree / baseline). Every run's open set must
equal the listeners. Listeners and scans live in a namespace of their own (deleted
afterwards), as in ``bench/scan.py``.

    sudo python bench/ab.py --base /tmp/base/src [--rounds 7] [--only syn] [--link veth]

With ``--link veth`` the listeners sit in a second namespace joined to the scanner's
by a veth pair (IPv4 10.203.0.0/24 and IPv6 fd00::/64, both inside the two
namespaces only), so answers cross a link instead of loopback.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from _netns import namespace, python_in_namespace

import scan as scan_bench  # bench/ is sys.path[0] when run as a script

ROOT = Path(__file__).resolve().parents[1]


def run_once(ns: str, src: str, argv: list[str], expected: set[tuple[str, int]]) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.xml"
        env = {**os.environ, "PYTHONPATH": src}
        start = time.perf_counter()
        proc = subprocess.run(
            ["ip", "netns", "exec", ns, *argv, "-o", "xml", "--output", str(out)],
            env=env,
            capture_output=True,
            check=False,
        )
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"{src}: {argv} failed: {proc.stderr.decode()[-400:]}")
        found = scan_bench.open_set(out)
        if found != expected:
            raise SystemExit(f"{src}: {argv}: open set differs: {sorted(found ^ expected)}")
    return elapsed


VETH_PORTS = (22, 80, 443, 8080, 40001, 65000)
VETH_LISTEN = """
import socket, sys
socks = []
for spec in sys.argv[1:]:
    host, port = spec.rsplit(":", 1)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, int(port))); s.listen(128); socks.append(s)
print("ready", flush=True)
sys.stdin.read()
"""


@contextmanager
def veth_pair() -> Iterator[str]:
    """The scanner's namespace, joined by a veth pair to a target namespace with listeners."""
    suffix = secrets.token_hex(3)
    with namespace("pk-ab-s") as near, namespace("pk-ab-t") as far:
        a, b = f"pkab{suffix}a", f"pkab{suffix}b"
        for command in (
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
            ["ip", "-n", near, "addr", "add", "10.203.0.1/24", "dev", a],
            ["ip", "-n", far, "addr", "add", "10.203.0.2/24", "dev", b],
            ["ip", "-n", near, "addr", "add", "fd00::1/64", "dev", a, "nodad"],
            ["ip", "-n", far, "addr", "add", "fd00::2/64", "dev", b, "nodad"],
            ["ip", "-n", near, "link", "set", a, "up"],
            ["ip", "-n", far, "link", "set", b, "up"],
        ):
            subprocess.run(command, check=True)
        specs = [f"{h}:{p}" for h in ("10.203.0.2", "fd00::2") for p in VETH_PORTS]
        with python_in_namespace(far, VETH_LISTEN, specs, what="listeners"):
            yield near


def veth_scenarios() -> list[tuple[str, list[str], set[tuple[str, int]]]]:
    pk = [sys.executable, "-m", "portkit", "scan"]
    return [
        (
            f"veth {engine or 'connect'} {host}, 65,535 ports",
            [*pk, host, "-p-", *([engine] if engine else [])],
            {(host, p) for p in VETH_PORTS},
        )
        for host in ("10.203.0.2", "fd00::2")
        for engine in ("", "--syn")
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the baseline's src directory")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--only", help="run only scenarios whose name contains this")
    parser.add_argument("--link", choices=["loopback", "veth"], default="loopback")
    args = parser.parse_args()
    here = str(ROOT / "src")
    with ExitStack() as stack:
        if args.link == "veth":
            ns = stack.enter_context(veth_pair())
            scenarios = veth_scenarios()
        else:
            ns = stack.enter_context(namespace("pk-ab-"))
            stack.enter_context(scan_bench.listeners(ns))
            scenarios = [(s.title, s.ours, s.expected) for s in scan_bench.loopback_scenarios()]
        for name, portkit_argv, expected in scenarios:
            if args.only and args.only not in name:
                continue
            times: dict[str, list[float]] = {"base": [], "new": []}
            for rnd in range(args.rounds):
                order = [("base", args.base), ("new", here)]
                if rnd % 2:
                    order.reverse()
                for label, src in order:
                    times[label].append(run_once(ns, src, portkit_argv, expected))
            ratios = [n / b for n, b in zip(times["new"], times["base"], strict=True)]
            print(
                f"{name}: base {statistics.median(times['base']):.3f} s, "
                f"new {statistics.median(times['new']):.3f} s, "
                f"median ratio new/base {statistics.median(ratios):.2f} "
                f"({args.rounds} paired rounds)",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
