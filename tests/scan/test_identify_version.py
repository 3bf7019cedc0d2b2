"""An HTTP server that names no product is asked ``GET /version``: etcd, for one.

etcd answers ``GET /`` with a bare 404 (no ``Server`` header); its ``/version`` document
names it. Here it runs on a port the registry does not give it, so identification has no
hint and must find it through the follow-up.
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

import pytest
from bench._netns import namespace

from .conftest import needs_root

pytestmark = [needs_root, pytest.mark.root]

INSIDE = Path(__file__).resolve().parent / "_identify_inside.py"
PORT = 22379  # not etcd's in the registry (2379 is)


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[str]:
    """etcd inside a fresh namespace on 127.0.0.1:PORT; the namespace."""
    binary = shutil.which("etcd") or pytest.skip("needs etcd (scripts/install-system-deps.sh)")
    with namespace("pk-ver-") as ns:
        url = f"http://127.0.0.1:{PORT}"
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, binary, "--data-dir", str(tmp_path / "data"),
             "--listen-client-urls", url, "--advertise-client-urls", url,
             "--listen-peer-urls", f"http://127.0.0.1:{PORT + 1}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            _wait_until_serving(ns, url)
            yield ns
        finally:
            proc.terminate()
            proc.wait(timeout=15)


def _wait_until_serving(ns: str, url: str) -> None:
    """Wait until etcd answers HTTP, not only accepts: it takes connections on its client
    port before it serves them (until its one-member cluster has a leader), and on a busy
    machine a scan in that moment saw nothing to name."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        answer = subprocess.run(
            ["ip", "netns", "exec", ns, "curl", "-s", "--max-time", "2", f"{url}/version"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if answer.returncode == 0 and "etcdserver" in answer.stdout:
            return
        time.sleep(0.2)  # polling a starting daemon, bounded by the deadline
    pytest.fail(f"etcd did not answer {url}/version within 60 s")


def test_etcd_on_an_unexpected_port_is_named_by_its_version_document(etcd: str) -> None:
    proc = subprocess.run(
        ["ip", "netns", "exec", etcd, sys.executable, str(INSIDE), "--wait", f"{PORT}/tcp"],
        capture_output=True, text=True, timeout=120, check=False,
        env={"PYTHONPATH": ":".join(sys.path), "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (found,) = json.loads(proc.stdout)
    assert found["service"] == "etcd-client", found
    assert found["product"] == "etcd", found
    assert found["version"], found
    assert found["probe"] == "http-get-version", found
