"""``portkit demo`` end to end: every part of the story is on screen, nothing is left."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from portkit.client import listening_sockets

SRC = Path(__file__).resolve().parents[2] / "src"


def test_demo_shows_every_part_and_cleans_up(tmp_path: Path) -> None:
    before = {(s.transport, s.address, s.port) for s in listening_sockets().sockets}
    proc = subprocess.run(
        [sys.executable, "-m", "portkit", "demo"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(SRC), "TMPDIR": str(tmp_path)},
        stdin=subprocess.DEVNULL,
        check=False,
        timeout=110,
    )
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert "NOT SHOWN" not in out

    # 1. the remote computer, with its table of applications and ports
    assert "1. The remote computer" in out
    served = dict(
        re.findall(r"^\s+\S+\s+(web|video|smtp|pop3|imap)\s+127\.0\.0\.1:(\d+)", out, re.M)
    )
    assert set(served) == {"web", "video", "smtp", "pop3", "imap"}, out

    def url(kind: str, path: str = "/") -> str:
        port = served[kind]
        return f"http://127.0.0.1{'' if port == '80' else ':' + port}{path}"

    # 2. the clients, each on its application's port
    assert f"GET {url('web', '/login')} -> 200 OK" in out
    assert f"SMTP 127.0.0.1:{served['smtp']}: sent" in out
    assert f"POP3 127.0.0.1:{served['pop3']}:" in out
    assert f"IMAP 127.0.0.1:{served['imap']}: INBOX has it" in out
    assert re.search(rf"GET {re.escape(url('video'))}\S+ Range: bytes=0-1023 -> 206", out)
    assert "Content-Range: bytes 0-1023/" in out

    # 3. the directory: every served port, what the registry expects, what answered
    assert re.search(r"PORT\s+REGISTRY SAYS\s+IDENTIFIED", out)
    for kind, port in served.items():
        row = re.search(rf"^\s+{port}\s+(\S+)\s+(\S+)", out, re.M)
        assert row is not None, f"{kind} port {port} missing from the directory"
        expected_service = {"web": "http", "video": "http"}.get(kind, kind)
        assert row.group(2) == expected_service, row.group(0)
    # ...and what URLs say, including one with a non-standard port
    assert (
        f"   {url('web', '/login')}\n     means: speak HTTP (the scheme) to 127.0.0.1:{served['web']}"
        in out
    )
    assert (
        f"   {url('video')}\n     means: speak HTTP (the scheme) to 127.0.0.1:{served['video']}"
        in out
    )
    assert "explicit in the URL, overriding http's default 80" in out

    # 4. what to try next
    assert "4. Try it by hand" in out
    assert "portkit connect" in out

    # cleaned up: no listener left behind, no files left behind
    after = {(s.transport, s.address, s.port) for s in listening_sockets().sockets}
    assert {int(p) for p in served.values()}.isdisjoint({port for _, _, port in after - before})
    assert list(tmp_path.iterdir()) == []
