"""Identification breadth: portkit vs ``nmap -sV`` on real servers on unexpected ports.

    sudo .venv/bin/python bench/identify_breadth.py [--markdown]

Starts every server of lab/breadth.py that is installed (34 on Debian 12 with
scripts/install-system-deps.sh) in a fresh namespace, each on a port its registry entry
does not explain (nmbd, charon and rpcbind excepted: they answer on their own port
only). Then, one after the other in the same run:

- ``portkit scan 127.0.0.1 -p T:...,U:... --udp --detect -o json``;
- ``nmap -sT -sU -sV -p T:...,U:... 127.0.0.1 -oX -``.

For each server it prints what each named (service, product, version) and each wall time
(whole processes). A service counts as named when it is the expected name or an alias
nmap uses for it; nmap's guesses from the port number alone (``method="table"``) do not
count. Traffic goes only to 127.0.0.1 inside the namespace.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "lab"))
sys.path.insert(0, str(REPO))
import breadth  # noqa: E402
from bench._netns import namespace  # noqa: E402

HOST = "127.0.0.1"
NMAP_TIMEOUT = 900
# Names that mean the same service (portkit's registry spelling first, then nmap's).
ALIASES = {
    "xmpp-client": {"xmpp-client", "jabber", "xmpp"},
    "svn": {"svn", "svnserve"},
    "ident": {"ident", "auth"},
    "socks5": {"socks5", "socks"},
    "socks4": {"socks4", "socks"},
    "printer": {"printer", "lpd"},
    "etcd-client": {"etcd-client", "etcd", "http"},
    "stun": {"stun", "turn"},
    "http-proxy": {"http-proxy", "squid-http"},
    "X11": {"x11"},
    "isakmp": {"isakmp", "ike"},
    "rpcbind": {"rpcbind", "sunrpc"},
    "zookeeper": {"zookeeper"},
}
# Servers that cannot move off their port, and ports not to use for those that can.
FIXED = {"nmbd": 137, "charon": 500, "rpcbind": 111}  # charon stays silent on other ports here
# inspircd: the same daemon as inspircd-registered, only listened to; avahi answers only
# on the namespace's non-loopback address, and the scans here are of 127.0.0.1;
# dante-socks4 is the same daemon as dante-socks5 (it speaks both, and is named socks5).
# node-exporter-metrics is node-exporter again (its metrics are a fixture of their own).
SKIP = {"inspircd", "avahi", "dante-socks4", "node-exporter-metrics", "rpcbind-udp"}


def plan() -> list[tuple[breadth.Server, int]]:
    """Each installed server with the unexpected port it gets."""
    chosen = []
    tcp, udp = 20101, 21101
    for server in breadth.installed():
        if server.name in SKIP:
            continue
        if server.name in FIXED:
            port = FIXED[server.name]
        elif server.transport == "tcp":
            port, tcp = tcp, tcp + 10  # room for a second port (etcd's peers, X11's VNC)
        else:
            port, udp = udp, udp + 10
        if server.name == "x11":
            port = 6000 + (port % 100)  # X11 listens on 6000 + display
        chosen.append((server, port))
    return chosen


def wait_ready(ns: str, servers: list[tuple[breadth.Server, int]], limit: float = 30) -> None:
    """Wait until every TCP server accepts connections (UDP ones get a moment)."""
    ports = [str(p) for s, p in servers if s.transport == "tcp"]
    script = (
        "import socket,sys,time\n"
        "end=time.monotonic()+float(sys.argv[1])\n"
        "for p in sys.argv[2:]:\n"
        "    while True:\n"
        "        try:\n"
        "            socket.create_connection(('127.0.0.1',int(p)),1).close(); break\n"
        "        except OSError:\n"
        "            if time.monotonic()>end: print('not ready',p); break\n"
        "            time.sleep(0.2)\n"
    )
    subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", script, str(limit), *ports],
                   check=True)  # fmt: skip
    time.sleep(2)  # the UDP daemons bind at start; give the slowest a moment


def run_ns(ns: str, cmd: list[str], timeout: float) -> tuple[float, str]:
    started = time.perf_counter()
    out = subprocess.run(["ip", "netns", "exec", ns, *cmd], capture_output=True, text=True,
                         timeout=timeout, check=False)  # fmt: skip
    return time.perf_counter() - started, out.stdout


def portkit_found(text: str) -> dict[tuple[int, str], dict[str, Any]]:
    found = {}
    doc = json.loads(text) if text.strip() else {}
    hosts = doc.get("hosts", []) if isinstance(doc, dict) else []
    results = [r for h in hosts for r in h.get("ports", [])] or doc.get("results", [])
    for r in results:
        ident = r.get("identified") or {}
        found[(r["port"], r["transport"])] = {
            "service": ident.get("service"),
            "product": ident.get("product"),
            "version": ident.get("version"),
            "state": r.get("state"),
        }
    return found


def nmap_found(xml_text: str) -> dict[tuple[int, str], dict[str, Any]]:
    found = {}
    root = ET.fromstring(xml_text)
    for port in root.iter("port"):
        svc = port.find("service")
        state = port.find("state")
        entry: dict[str, Any] = {"state": state.get("state") if state is not None else None}
        if svc is not None and svc.get("method") != "table":
            entry |= {"service": svc.get("name"), "product": svc.get("product"),
                      "version": svc.get("version")}  # fmt: skip
            if svc.get("tunnel") == "ssl" and entry["service"]:
                entry["service"] = f"ssl/{entry['service']}"
        found[(int(port.get("portid", "0")), port.get("protocol", ""))] = entry
    return found


# Servers whose version is announced somewhere other than the fixture of lab/breadth.py's
# table (node exporter: in its metrics, not on its page).
VERSION_ELSEWHERE = {"node-exporter"}


def announces(server: breadth.Server) -> bool:
    return bool(server.version) or server.name in VERSION_ELSEWHERE


def named(truth: str, got: str | None) -> bool:
    if not got:
        return False
    return got.lower() in {truth.lower(), *ALIASES.get(truth, set())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--no-nmap", action="store_true", help="run portkit's side only")
    parser.add_argument(
        "--level", choices=("light", "normal", "all"), default="normal",
        help="portkit's --detect=LEVEL (default normal)",
    )  # fmt: skip
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("identify_breadth: needs root (network namespace)", file=sys.stderr)
        return 3
    servers = plan()
    state = Path(tempfile.mkdtemp(prefix="portkit-breadth-"))
    state.chmod(0o755)
    procs: list[subprocess.Popen[bytes]] = []
    with namespace("pk-breadth-") as ns:
        try:
            breadth.add_test_interface(ns)
            procs = [breadth.start(s, state, ns, p) for s, p in servers]
            wait_ready(ns, servers)
            tcp = ",".join(str(p) for s, p in servers if s.transport == "tcp")
            udp = ",".join(str(p) for s, p in servers if s.transport == "udp")
            spec = f"T:{tcp},U:{udp}"
            portkit = [str(REPO / ".venv" / "bin" / "portkit"), "scan", HOST, "-p", spec,
                       "--udp", f"--detect={args.level}", "-o", "json"]  # fmt: skip
            pk_time, pk_out = run_ns(ns, portkit, NMAP_TIMEOUT)
            nmap = ["nmap", "-sT", "-sU", "-sV", "-Pn", "-n", "-p", spec, HOST, "-oX", "-"]
            nm_time, nm_out = (1.0, "<nmaprun/>")
            if not args.no_nmap:
                nm_time, nm_out = run_ns(ns, nmap, NMAP_TIMEOUT)
        finally:
            for proc in procs:
                try:
                    os.killpg(proc.pid, 15)
                except ProcessLookupError:
                    continue
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, 9)
            shutil.rmtree(state, ignore_errors=True)
    report(servers, portkit_found(pk_out), nmap_found(nm_out), pk_time, nm_time, args.markdown)
    return 0


def report(
    servers: list[tuple[breadth.Server, int]],
    pk: dict[tuple[int, str], dict[str, Any]],
    nm: dict[tuple[int, str], dict[str, Any]],
    pk_time: float,
    nm_time: float,
    markdown: bool,
) -> None:
    def cell(entry: dict[str, Any] | None) -> str:
        if not entry or not entry.get("service"):
            return f"- ({entry.get('state') if entry else 'missing'})"
        text = str(entry["service"])
        if entry.get("product"):
            text += f" / {entry['product']}"
        if entry.get("version"):
            text += f" {entry['version']}"
        return text

    rows = []
    # named; with a product; with a product and a version; of the servers that announce
    # a version (lab/breadth.py's table), how many with it.
    score = {"portkit": [0, 0, 0, 0], "nmap": [0, 0, 0, 0]}
    announcing = sum(announces(server) for server, _ in servers)
    for server, port in servers:
        key = (port, server.transport)
        mine, theirs = pk.get(key), nm.get(key)
        for who, entry in (("portkit", mine), ("nmap", theirs)):
            if entry and named(server.service, entry.get("service")):
                score[who][0] += 1
                score[who][1] += bool(entry.get("product"))
                both = bool(entry.get("product") and entry.get("version"))
                score[who][2] += both
                score[who][3] += both and announces(server)
        rows.append((f"{port}/{server.transport}", server.name, server.service, cell(mine),
                     cell(theirs)))  # fmt: skip
    n = len(servers)
    sep = " | " if markdown else "  "
    if markdown:
        print("| port | server | service | portkit | nmap -sV |\n|---|---|---|---|---|")
    for row in rows:
        print(("| " if markdown else "") + sep.join(row) + (" |" if markdown else ""))
    print()
    for who, seconds in (("portkit", pk_time), ("nmap -sV", nm_time)):
        named_, products, versions, announced = score[who.split()[0]]
        print(f"{who}: named {named_}/{n}, products {products}/{n}, products and versions "
              f"{versions}/{n} ({announced} of the {announcing} that announce a version), "
              f"{seconds:.1f} s")  # fmt: skip
    print(f"time ratio portkit/nmap: {pk_time / nm_time:.3f}")


if __name__ == "__main__":
    sys.exit(main())
