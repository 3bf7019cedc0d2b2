"""The catalogue's less common families, through the identification ladder, against the
real daemons of lab/breadth.py on ports that are not theirs.

Each daemon runs in a network namespace of this test's own on an unusual port, and
identification runs inside it with no registry hint (``expected=None``): what names the
server is the catalogue alone. Skips without root or with a daemon missing.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.root, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
INSIDE = REPO / "tests" / "scan" / "_identify_inside.py"
NAMESPACE = f"pk-breadth-t{os.getpid()}"

# server (lab/breadth.py) -> (unusual port, service, product or "")
SERVERS = {
    "squid": (23128, "http-proxy", "Squid"),
    "tinyproxy": (23129, "http-proxy", "Tinyproxy"),
    "cupsd": (20631, "ipp", "CUPS"),
    "ngircd": (26999, "irc", "ngIRCd"),
    # InspIRCd answers registration after its hostname lookup: the follow-up waits.
    "inspircd": (26998, "irc", "InspIRCd"),
    "prosody": (25999, "xmpp-client", ""),
    "ejabberd": (25232, "xmpp-client", ""),
    "rsync": (20873, "rsync", ""),
    "svnserve": (23690, "svn", "Subversion"),
    "oidentd": (20113, "ident", ""),
    "epmd": (24999, "epmd", ""),
    "beanstalkd": (21999, "beanstalkd", "beanstalkd"),
    "x11": (6042, "X11", "X.Org"),
    "microsocks": (21080, "socks5", ""),
    "node-exporter": (29999, "http", "Node Exporter"),
    "influxdb": (28999, "http", "InfluxDB"),
    "git-daemon": (29418, "git", ""),
    "fingerd": (20079, "finger", ""),
    "dante-socks5": (21082, "socks5", ""),
    "lpd": (20515, "printer", ""),
    "rsyslog-relp": (22514, "relp", "librelp"),
    # etcd answers GET / with a bare 404: its /version document names it.
    "etcd": (22379, "etcd-client", "etcd"),
    "openvpn": (21194, "openvpn", ""),
    "leafnode": (20119, "nntp", "Leafnode"),
    "varnish": (26081, "http", "Varnish"),
    "rpcbind": (111, "rpcbind", "rpcbind"),  # it listens on 111 only
    "dictd": (22628, "dict", "dictd"),
    # UDP without a hint: each probe gets its turn, so only the first few families fit the
    # default budget (the registry's service goes first where there is one).
    "coturn": (23478, "stun", "Coturn"),
    "nmbd": (137, "netbios-ns", ""),
    # FreeRADIUS holds its Access-Reject back a second.
    "freeradius": (21812, "radius", ""),
}
# Servers that announce their version: it must be read (nmap -sV reports each).
VERSIONED = {
    "squid", "tinyproxy", "cupsd", "ngircd", "inspircd", "beanstalkd", "x11",
    "node-exporter", "influxdb", "rsyslog-relp", "coturn", "etcd", "leafnode", "varnish",
    "rpcbind", "dictd",
}  # fmt: skip
# Found through the registry's hint, on their own ports (the probe of the service first).
HINTED = {
    "openvpn-hinted": (1194, "openvpn", ""),
}


def _breadth() -> Any:
    spec = importlib.util.spec_from_file_location("breadth", REPO / "lab" / "breadth.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["breadth"] = module  # dataclasses look their module up while being made
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def verdicts() -> Iterator[dict[int, dict[str, Any]]]:
    if os.geteuid() != 0:
        pytest.skip("needs root (a network namespace)")
    breadth = _breadth()
    known = {s.name: s for s in breadth.installed()}
    missing = sorted(set(SERVERS) - set(known))
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (scripts/install-system-deps.sh)")
    state = Path(tempfile.mkdtemp(prefix="pk-breadth-servers-"))
    state.chmod(0o755)
    started: list[subprocess.Popen[bytes]] = []
    subprocess.run(["ip", "netns", "add", NAMESPACE], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", NAMESPACE, "ip", "link", "set", "lo", "up"],
                       check=True)  # fmt: skip
        breadth.add_test_interface(NAMESPACE)
        every = SERVERS | HINTED
        for name, (port, *_rest) in every.items():
            started.append(breadth.start(known[_daemon(name)], state, NAMESPACE, port))
        specs = [f"{port}/{known[_daemon(name)].transport}" for name, (port, *_r) in every.items()]
        # --wait: until every TCP server accepts, then identify with no registry hint.
        plain = _inside("--wait", *specs)
        hinted = _inside(*(f"{port}/tcp" for port, *_r in HINTED.values()))
        # The hinted verdicts replace the unhinted ones of the same ports.
        yield {v["port"]: v for v in plain} | {v["port"]: v for v in hinted}
    finally:
        for p in started:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
        for p in started:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(15)
        listed = subprocess.run(["ip", "netns", "pids", NAMESPACE], capture_output=True,
                                text=True, check=False)  # fmt: skip
        for pid in listed.stdout.split():  # only this test's daemons live in its namespace
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        for p in started:
            p.wait(15)
        subprocess.run(["ip", "netns", "del", NAMESPACE], check=False)
        shutil.rmtree(state, ignore_errors=True)


def _daemon(name: str) -> str:
    return name.removesuffix("-hinted")


def _inside(*args: str) -> list[dict[str, Any]]:
    proc = subprocess.run(
        ["ip", "netns", "exec", NAMESPACE, sys.executable, str(INSIDE), *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    found: list[dict[str, Any]] = json.loads(proc.stdout)
    return found


@pytest.mark.parametrize("server", sorted(SERVERS | HINTED))
def test_server_is_named(verdicts: dict[int, dict[str, Any]], server: str) -> None:
    port, service, product = (SERVERS | HINTED)[server]
    found = verdicts[port]
    assert found["service"] == service, found
    if product:
        assert found["product"] is not None, found
        assert product.lower() in found["product"].lower()
    if server in VERSIONED:
        assert found["version"], found
