"""``scan --detect`` on UDP: real daemons on ports the registry does not give them.

dnsmasq, snmpd and memcached run in a fresh network namespace on high UDP ports; the
scan must name each (`domain`, `snmp`, `memcache`) with its product, as ``nmap -sU -sV``
does for the first two, and must call a port with nothing behind it closed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.scan.conftest import needs_root

pytestmark = needs_root

SRC = str(Path(__file__).resolve().parents[2] / "src")
DNS_PORT, SNMP_PORT, MEMCACHED_PORT, NOTHING_PORT = 5533, 16161, 11311, 16162


def _need(program: str) -> str:
    path = shutil.which(program) or shutil.which(program, path="/usr/sbin:/usr/bin")
    if path is None:
        pytest.skip(f"needs {program} (scripts/install-system-deps.sh installs it)")
    return path


def _bound(namespace: str, port: int) -> bool:
    out = subprocess.run(
        ["ip", "netns", "exec", namespace, "ss", "-Hlun", f"sport = :{port}"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return bool(out.strip())


@pytest.fixture
def udp_daemons(netns: str, tmp_path: Path) -> Iterator[str]:
    """dnsmasq, snmpd and memcached inside ``netns`` on high UDP ports; the namespace."""
    dnsmasq, snmpd, memcached = _need("dnsmasq"), _need("snmpd"), _need("memcached")
    tmp_path.chmod(0o755)
    (tmp_path / "dnsmasq.conf").write_text(
        f"port={DNS_PORT}\nlisten-address=127.0.0.1\nbind-interfaces\nno-resolv\nno-hosts\n"
        f"auth-zone=udp.portkit.test\nauth-server=ns.udp.portkit.test\n"
        f"pid-file={tmp_path}/dnsmasq.pid\nuser=root\n",
        encoding="utf-8",
    )
    (tmp_path / "snmpd.conf").write_text(
        f"agentaddress udp:127.0.0.1:{SNMP_PORT}\nrocommunity public 127.0.0.1\n",
        encoding="utf-8",
    )
    commands = [
        [dnsmasq, "-k", f"--conf-file={tmp_path}/dnsmasq.conf"],
        [snmpd, "-f", "-Lf", f"{tmp_path}/snmpd.log", "-C", "-c", f"{tmp_path}/snmpd.conf",
         "-p", f"{tmp_path}/snmpd.pid"],
        [memcached, "-u", "nobody", "-l", "127.0.0.1", "-p", "0", "-U", str(MEMCACHED_PORT),
         "-m", "8"],
    ]  # fmt: skip
    procs = [
        subprocess.Popen(
            ["ip", "netns", "exec", netns, *command],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for command in commands
    ]
    try:
        deadline = time.monotonic() + 20
        for port in (DNS_PORT, SNMP_PORT, MEMCACHED_PORT):
            while not _bound(netns, port):
                assert time.monotonic() < deadline, f"nothing bound udp port {port} in 20 s"
                time.sleep(0.05)  # polling the daemon's own socket, bounded above
        yield netns
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=10)


def _scan(namespace: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.run(
        ["ip", "netns", "exec", namespace, sys.executable, "-m", "portkit", "scan", "127.0.0.1",
         *args],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )  # fmt: skip


def test_udp_daemons_on_unexpected_ports_are_named(udp_daemons: str, names_cache: str) -> None:
    spec = f"U:{DNS_PORT},{SNMP_PORT},{MEMCACHED_PORT},{NOTHING_PORT}"
    proc = _scan(udp_daemons, "-p", spec, "--detect", "-o", "json")
    assert proc.returncode == 0, proc.stderr
    ports: dict[int, dict[str, Any]] = {
        p["port"]: p for p in json.loads(proc.stdout)["hosts"][0]["ports"]
    }
    dns = ports[DNS_PORT]
    assert (dns["state"], dns["reason"]) == ("open", "udp-response")
    assert dns["identified"]["service"] == "domain"
    assert dns["identified"]["product"] == "dnsmasq"
    assert dns["identified"]["version"]  # dnsmasq answers version.bind (CHAOS TXT)
    snmp = ports[SNMP_PORT]
    assert snmp["state"] == "open"
    assert snmp["identified"]["service"] == "snmp"
    assert snmp["identified"]["product"] == "net-snmp"
    memcache = ports[MEMCACHED_PORT]
    assert memcache["state"] == "open"
    assert memcache["identified"]["service"] == "memcache"
    assert memcache["identified"]["product"] == "memcached"
    assert ports[NOTHING_PORT]["state"] == "closed"


def test_udp_dns_in_nmap_xml_as_nmap_writes_it(udp_daemons: str) -> None:
    import xml.etree.ElementTree as ET

    proc = _scan(udp_daemons, "-p", f"U:{DNS_PORT}", "--detect", "-o", "xml")
    assert proc.returncode == 0, proc.stderr
    port = ET.fromstring(proc.stdout).find("host/ports/port")
    assert port is not None
    assert port.get("protocol") == "udp"
    state, service = port.find("state"), port.find("service")
    assert state is not None
    assert service is not None
    assert (state.get("state"), state.get("reason")) == ("open", "udp-response")
    assert (service.get("name"), service.get("product")) == ("domain", "dnsmasq")
    assert service.get("method") == "probed"


TFTP_PORT = 16969


@pytest.fixture
def tftpd(netns: str, tmp_path: Path) -> Iterator[str]:
    """Debian's tftpd-hpa inside ``netns`` on 127.0.0.1:TFTP_PORT; the namespace.

    in.tftpd answers each request from a new port of its own (RFC 1350 section 4), and
    wants an interface other than loopback to exist: a veth pair, both ends inside.
    """
    binary = _need("in.tftpd")
    ip = ["ip", "netns", "exec", netns, "ip"]
    subprocess.run([*ip, "link", "add", "pkt0", "type", "veth", "peer", "name", "pkt1"],
                   check=True)  # fmt: skip
    subprocess.run([*ip, "addr", "add", "192.0.2.1/24", "dev", "pkt0"], check=True)
    for dev in ("pkt0", "pkt1"):
        subprocess.run([*ip, "link", "set", dev, "up"], check=True)
    root = tmp_path / "root"
    root.mkdir()
    tmp_path.chmod(0o755)
    proc = subprocess.Popen(
        ["ip", "netns", "exec", netns, binary, "-L", "-a", f"127.0.0.1:{TFTP_PORT}",
         "-s", str(root)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while not _bound(netns, TFTP_PORT):
            assert time.monotonic() < deadline, "in.tftpd did not bind in 20 s"
            time.sleep(0.05)  # polling the daemon's own socket, bounded above
        yield netns
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_tftp_answering_from_a_new_port_is_named(tftpd: str) -> None:
    # Port 16969 is not TFTP's in the registry: every UDP probe goes out, TFTP's among them.
    proc = _scan(tftpd, "-p", f"U:{TFTP_PORT}", "--detect", "-o", "json")
    assert proc.returncode == 0, proc.stderr
    (port,) = json.loads(proc.stdout)["hosts"][0]["ports"]
    assert (port["state"], port["reason"]) == ("open", "udp-response")
    assert port["identified"]["service"] == "tftp"
    assert port["identified"]["extra"].startswith("error ")  # its ERROR packet, judged
