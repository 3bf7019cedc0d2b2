"""Identification of real servers beyond the lab, on ports that are not theirs.

PostgreSQL, MariaDB, Mosquitto, OpenLDAP, net-snmp, NTPsec, TigerVNC, xrdp, Samba,
RabbitMQ and lighttpd run in a network namespace of this test's own (loopback only), each
on an unusual port, started the way lab/capture-fixtures.py starts them. Identification
runs inside the namespace with no registry hint (``expected=None``), as for a port the
registry knows nothing about.
"""

from __future__ import annotations

import contextlib
import dataclasses
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
from types import ModuleType
from typing import Any

import pytest

pytestmark = [pytest.mark.root, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
INSIDE = Path(__file__).with_name("_identify_inside.py")
NAMESPACE = f"pk-identify-t{os.getpid()}"

# daemon -> (port, transport, service, product or "")
SERVERS = {
    "postgresql": (15432, "tcp", "postgresql", "PostgreSQL"),
    "mariadb": (13306, "tcp", "mysql", "MariaDB"),
    "mosquitto": (11883, "tcp", "mqtt", ""),
    "slapd": (10389, "tcp", "ldap", "OpenLDAP"),
    "snmpd": (10161, "udp", "snmp", "net-snmp"),
    "ntpd": (123, "udp", "ntp", ""),
    "tigervnc": (15901, "tcp", "rfb", ""),
    "xrdp": (13389, "tcp", "ms-wbt-server", ""),
    "samba": (10445, "tcp", "microsoft-ds", ""),
    "rabbitmq": (15673, "tcp", "amqp", "RabbitMQ"),
    "lighttpd": (18081, "tcp", "http", "lighttpd"),
}


def _capture_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "capture_fixtures", REPO / "lab" / "capture-fixtures.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["capture_fixtures"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def verdicts() -> Iterator[dict[int, dict[str, Any]]]:
    if os.geteuid() != 0:
        pytest.skip("needs root (a network namespace, ports below 1024)")
    cap: Any = _capture_module()
    daemons = {d.name: d for d in cap.EXTRA_DAEMONS if Path(d.binary).exists()}
    missing = sorted(set(SERVERS) - set(daemons))
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (scripts/install-system-deps.sh)")
    cap.NAMESPACE = NAMESPACE
    subprocess.run(["ip", "netns", "add", NAMESPACE], check=True)
    state = Path(tempfile.mkdtemp(prefix="pk-identify-servers-"))
    state.chmod(0o755)
    started: list[subprocess.Popen[bytes]] = []
    try:
        subprocess.run(["ip", "netns", "exec", NAMESPACE, "ip", "link", "set", "lo", "up"],
                       check=True)  # fmt: skip
        for name, (port, *_rest) in SERVERS.items():
            proc = cap.start_daemon(dataclasses.replace(daemons[name], port=port), state)
            assert proc is not None
            started.append(proc)
        specs = [f"{port}/{transport}" for port, transport, *_ in SERVERS.values()]
        proc = subprocess.run(
            ["ip", "netns", "exec", NAMESPACE, sys.executable, str(INSIDE), "--wait", *specs],
            capture_output=True, text=True, timeout=90, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        yield {v["port"]: v for v in json.loads(proc.stdout)}
    finally:
        for p in started:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(15)
        # Whatever is still in the namespace was started by this test (RabbitMQ's epmd).
        listed = subprocess.run(["ip", "netns", "pids", NAMESPACE], capture_output=True,
                                text=True, check=False)  # fmt: skip
        for pid in listed.stdout.split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        subprocess.run(["ip", "netns", "del", NAMESPACE], check=False)
        shutil.rmtree(state, ignore_errors=True)


@pytest.mark.parametrize("daemon", sorted(SERVERS))
def test_server_on_an_unusual_port_is_identified(
    verdicts: dict[int, dict[str, Any]], daemon: str
) -> None:
    port, transport, service, product = SERVERS[daemon]
    found = verdicts[port]
    assert found["transport"] == transport
    assert found["service"] == service
    if product:
        assert found["product"] is not None
        assert product.lower() in found["product"].lower()
