"""Network namespaces for benchmarks and tests: created fresh, always deleted.

Traffic of a scan or load run stays inside the namespaces (their own loopback, or a veth
pair between two of them), so it neither reaches other machines nor meets the listeners
that come and go on the host's. Needs root and iproute2 (and nftables for dropped ports).
Importable from the tests as ``bench._netns``.
"""

from __future__ import annotations

import json
import random
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

__all__ = [
    "Link",
    "TargetServices",
    "namespace",
    "python_in_namespace",
    "random_services",
    "veth_link",
]

# RFC 2544 §C.2.2's benchmarking block (198.18.0.0/15) and a unique-local IPv6 prefix
# (RFC 4193): both exist only on the two ends of the pair, and neither namespace has a
# default route, so nothing addressed elsewhere can leave them.
SCANNER_V4, TARGET_V4 = "198.18.0.1", "198.18.0.2"
SCANNER_V6, TARGET_V6 = "fd00::1", "fd00::2"


@contextmanager
def namespace(prefix: str, *, loopback: bool = True) -> Iterator[str]:
    """Yield the name of a new namespace ``<prefix><random hex>``; delete it on the way out.

    Args:
        prefix: the start of the name, e.g. ``"pk-scan-"`` (project namespaces start ``pk-``).
        loopback: bring its loopback interface up (a fresh namespace has it down).
    """
    name = f"{prefix}{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        if loopback:
            subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


@contextmanager
def python_in_namespace(ns: str, script: str, args: list[str], *, what: str) -> Iterator[None]:
    """Run ``python -c script args`` inside ``ns`` while the block runs.

    The script prints ``ready`` once it serves and exits when its stdin closes, which is how
    the block's end stops it. ``what`` names it in the error when it does not start.
    """
    proc = subprocess.Popen(
        ["ip", "netns", "exec", ns, sys.executable, "-c", script, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise SystemExit(f"{what} did not start")
        yield
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()


@dataclass(frozen=True)
class TargetServices:
    """What the target end of a link runs (every port on both its IPv4 and IPv6 address).

    ``listeners`` accept and hold each connection until the peer closes it; ``closers``
    accept and close at once; ``dropped`` are TCP ports whose segments nftables drops in the
    target (some of them with a listener behind the rule, which must stay invisible);
    ``udp`` answer every datagram with its own bytes; ``udp_dropped`` are UDP ports dropped
    the same way.
    """

    listeners: frozenset[int] = frozenset()
    closers: frozenset[int] = frozenset()
    dropped: frozenset[int] = frozenset()
    udp: frozenset[int] = frozenset()
    udp_dropped: frozenset[int] = frozenset()

    @property
    def open_tcp(self) -> frozenset[int]:
        """The TCP ports a correct scan calls open: a listener and no drop rule."""
        return (self.listeners | self.closers) - self.dropped

    def __post_init__(self) -> None:
        if self.listeners & self.closers:
            raise ValueError(f"ports both held and closed: {sorted(self.listeners & self.closers)}")


def random_services(
    listeners: int,
    *,
    closers: int = 0,
    dropped: int = 0,
    udp: int = 0,
    seed: int | None = None,
) -> TargetServices:
    """Distinct random TCP and UDP ports (1-65535) for a target.

    Half of the ``dropped`` ports (rounded down) have a listener behind the drop rule;
    the other half have nothing. ``seed`` repeats a draw.
    """
    rng = random.Random(seed)
    tcp = rng.sample(range(1, 65536), listeners + closers + dropped - dropped // 2)
    held, rest = tcp[:listeners], tcp[listeners:]
    closed, unheld_drops = rest[:closers], rest[closers:]
    drops = rng.sample(held, dropped // 2) + unheld_drops
    udp_ports = rng.sample(range(1, 65536), udp + udp // 4)
    return TargetServices(
        listeners=frozenset(held),
        closers=frozenset(closed),
        dropped=frozenset(drops),
        udp=frozenset(udp_ports[:udp]),
        udp_dropped=frozenset(udp_ports[udp:]),
    )


@dataclass(frozen=True)
class Link:
    """Two namespaces joined by a veth pair: ``scanner`` looks at ``target`` across it."""

    scanner: str
    target: str
    services: TargetServices = field(default_factory=TargetServices)
    scanner_v4: str = SCANNER_V4
    target_v4: str = TARGET_V4
    scanner_v6: str = SCANNER_V6
    target_v6: str = TARGET_V6
    scanner_if: str = ""
    target_if: str = ""

    def in_scanner(self, *argv: str) -> list[str]:
        """``argv`` as a command line that runs inside the scanner namespace."""
        return ["ip", "netns", "exec", self.scanner, *argv]


# The target's services: one selector loop for every socket. Both families through one
# IPv6 socket per port (IPV6_V6ONLY off), so 198.18.0.2 and fd00::2 show the same ports.
SERVE_SCRIPT = """
import json, selectors, socket, sys
spec = json.loads(sys.argv[1])
sel = selectors.DefaultSelector()
def listen(port, kind):
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("::", port)); s.listen(1024); s.setblocking(False)
    sel.register(s, selectors.EVENT_READ, kind)
for port in spec["listeners"]:
    listen(port, "hold")
for port in spec["closers"]:
    listen(port, "close")
for port in spec["udp"]:
    u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    u.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    u.bind(("::", port)); u.setblocking(False)
    sel.register(u, selectors.EVENT_READ, "udp")
sel.register(sys.stdin, selectors.EVENT_READ, "stop")
print("ready", flush=True)
while True:
    for key, _ in sel.select():
        sock, kind = key.fileobj, key.data
        if kind == "stop":
            sys.exit(0)
        try:
            if kind == "udp":
                data, peer = sock.recvfrom(2048)
                sock.sendto(data, peer)
            elif kind == "peer":
                if not sock.recv(4096):
                    sel.unregister(sock); sock.close()
            else:
                conn, _ = sock.accept()
                if kind == "close":
                    conn.close()
                else:
                    conn.setblocking(False)
                    sel.register(conn, selectors.EVENT_READ, "peer")
        except (BlockingIOError, ConnectionError):
            pass
"""


def _ip(ns: str, *args: str) -> None:
    subprocess.run(["ip", "-n", ns, *args], check=True)


def _nft_drop_rules(services: TargetServices) -> str:
    rules = []
    if services.dropped:
        rules.append(f"tcp dport {{ {', '.join(map(str, sorted(services.dropped)))} }} drop")
    if services.udp_dropped:
        rules.append(f"udp dport {{ {', '.join(map(str, sorted(services.udp_dropped)))} }} drop")
    body = "\n".join(f"    {r}" for r in rules)
    return (
        "table inet pklink {\n"
        "  chain input {\n"
        "    type filter hook input priority 0; policy accept;\n"
        f"{body}\n"
        "  }\n"
        "}\n"
    )


def _wait_for_addresses(ns: str, deadline: float) -> None:
    """Wait until no IPv6 address in ``ns`` is tentative and the veth carries."""
    while True:
        tentative = subprocess.run(
            ["ip", "-n", ns, "-6", "addr", "show", "tentative"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        links = subprocess.run(
            ["ip", "-n", ns, "-o", "link", "show", "up"], capture_output=True, text=True, check=True
        ).stdout
        if not tentative.strip() and "LOWER_UP" in links and "NO-CARRIER" not in links:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"addresses in namespace {ns} did not become usable")
        time.sleep(0.05)


@contextmanager
def veth_link(
    services: TargetServices | None = None, *, prefix: str = "pk-link-"
) -> Iterator[Link]:
    """Yield a :class:`Link`: scanner and target namespaces joined by a veth pair.

    The scanner end is 198.18.0.1/24 and fd00::1/64, the target end 198.18.0.2/24 and
    fd00::2/64 (duplicate address detection off, addresses usable before this yields).
    The target runs ``services``; nftables there drops the ports the services name.
    Both namespaces, and so the pair and the servers' sockets, are deleted on the way out.
    """
    services = services or TargetServices()
    suffix = secrets.token_hex(3)
    # Interface names stay under IFNAMSIZ (15 characters); each end is created inside its
    # namespace, so the host's interfaces never see (or clash with) the names.
    scan_if, target_if = f"pkv{suffix}s", f"pkv{suffix}t"
    with ExitStack() as stack:
        scanner = stack.enter_context(namespace(f"{prefix}s-"))
        target = stack.enter_context(namespace(f"{prefix}t-"))
        pair = ["veth", "peer", "name", target_if, "netns", target]
        _ip(scanner, "link", "add", scan_if, "type", *pair)
        for ns, ifname, v4, v6 in (
            (scanner, scan_if, SCANNER_V4, SCANNER_V6),
            (target, target_if, TARGET_V4, TARGET_V6),
        ):
            _ip(ns, "addr", "add", f"{v4}/24", "dev", ifname)
            _ip(ns, "-6", "addr", "add", f"{v6}/64", "dev", ifname, "nodad")
            _ip(ns, "link", "set", ifname, "up")
        deadline = time.monotonic() + 10
        for ns in (scanner, target):
            _wait_for_addresses(ns, deadline)
        if services.dropped or services.udp_dropped:
            subprocess.run(
                ["ip", "netns", "exec", target, "nft", "-f", "-"],
                input=_nft_drop_rules(services),
                text=True,
                check=True,
            )
        if services.listeners or services.closers or services.udp:
            spec = {
                "listeners": sorted(services.listeners),
                "closers": sorted(services.closers),
                "udp": sorted(services.udp),
            }
            stack.enter_context(
                python_in_namespace(
                    target, SERVE_SCRIPT, [json.dumps(spec)], what="target services"
                )
            )
        yield Link(
            scanner=scanner,
            target=target,
            services=services,
            scanner_if=scan_if,
            target_if=target_if,
        )
