"""Servers that speak only HTTP/2 are named: nghttpd, cleartext and inside TLS.

nghttpd (Debian's nghttp2-server) runs in a namespace of this test's own on two ports
the registry gives to other services. Cleartext, it sends its SETTINGS preface first
(RFC 9113 §3.4); inside TLS it answers nothing to HTTP/1 and chooses ``h2`` when ALPN
offers it (RFC 7301). nmap 7.93 -sV names neither (``opsmessaging?``, ``ssl/unknown``).
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

from tests import _tls
from tests.scan.conftest import needs_root

pytestmark = needs_root

SRC = str(Path(__file__).resolve().parents[2] / "src")
CLEAR, TLS = 18090, 18493


def _listening(namespace: str, port: int) -> bool:
    out = subprocess.run(
        ["ip", "netns", "exec", namespace, "ss", "-Hltn", f"sport = :{port}"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return bool(out.strip())


@pytest.fixture
def nghttpd(netns: str, tmp_path: Path) -> Iterator[str]:
    program = shutil.which("nghttpd") or shutil.which("nghttpd", path="/usr/sbin")
    if program is None:
        pytest.skip("needs nghttpd (nghttp2-server; scripts/install-system-deps.sh)")
    cert, key = _tls.self_signed_cert(tmp_path, "h2.portkit.test")
    commands = [
        [program, "--no-tls", "-a", "127.0.0.1", str(CLEAR)],
        [program, "-a", "127.0.0.1", str(TLS), str(key), str(cert)],
    ]
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
        for port in (CLEAR, TLS):
            while not _listening(netns, port):
                assert time.monotonic() < deadline, f"nghttpd did not listen on {port} in 20 s"
                time.sleep(0.05)  # polling the daemon's own socket, bounded above
        yield netns
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=10)


def _probe(namespace: str, port: int) -> dict[str, Any]:
    proc = subprocess.run(
        ["ip", "netns", "exec", namespace, sys.executable, "-m", "portkit", "probe",
         f"127.0.0.1:{port}", "--json"],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "PYTHONPATH": SRC},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    found: dict[str, Any] = json.loads(proc.stdout)["identified"]
    return found


def test_cleartext_http2_only_is_http(nghttpd: str) -> None:
    found = _probe(nghttpd, CLEAR)
    assert found["service"] == "http"
    assert found["extra"] == "HTTP/2 only"
    assert found["tls"] is None


def test_http2_only_inside_tls_is_https(nghttpd: str) -> None:
    found = _probe(nghttpd, TLS)
    assert found["service"] == "https"
    assert found["extra"] == "HTTP/2 only"
    assert found["tls"]["alpn"] == "h2"
    assert found["tls"]["subject"] == "CN=h2.portkit.test"
