"""Five applications on five ports in one host, each reached by a real client."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from tests.host._helpers import curl, running_host, url


async def test_web_video_forward_exec_and_echo_side_by_side(tmp_path: Path) -> None:
    (tmp_path / "public").mkdir()
    (tmp_path / "public" / "index.html").write_text("<h1>web</h1>\n")
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "a.webm").write_bytes(b"\x1a\x45\xdf\xa3" + b"\0" * 100)
    text = """
[apps.web]
kind = "web"
listen = "127.0.0.1:0"
root = "public"

[apps.video]
kind = "video"
listen = "127.0.0.1:0"
root = "videos"

[apps.echo]
kind = "echo"
listen = "127.0.0.1:0"

[apps.year]
kind = "exec"
listen = "127.0.0.1:0"
argv = ["/bin/echo", "served by a program"]
"""
    async with running_host(text, tmp_path) as first:
        web_port = first.bound("web")[0][1]
    # The forward needs the web application's port: name it, then start all five.
    text = text.replace(
        '[apps.web]\nkind = "web"\nlisten = "127.0.0.1:0"',
        f'[apps.web]\nkind = "web"\nlisten = "127.0.0.1:{web_port}"',
    )
    text += f'\n[apps.fwd]\nkind = "forward"\nlisten = "127.0.0.1:0"\nto = "127.0.0.1:{web_port}"\n'
    async with running_host(text, tmp_path) as host:
        ports = {name: host.bound(name)[0][1] for name in host.apps}
        assert len(set(ports.values())) == 5  # five applications, five ports
        rc, out, _ = await curl(url(host, "web", "/"))
        assert (rc, out) == (0, b"<h1>web</h1>\n")
        rc, out, _ = await curl(url(host, "fwd", "/"))  # HTTP through the forwarder
        assert (rc, out) == (0, b"<h1>web</h1>\n")
        rc, out, _ = await curl(url(host, "video", "/"))
        assert b'<video controls preload="metadata" src="a.webm"' in out
        rc, out, _ = await curl(f"telnet://127.0.0.1:{ports['year']}")
        assert (rc, out) == (0, b"served by a program\n")
        if shutil.which("socat") is None:
            pytest.skip("needs socat for the echo client")
        proc = await asyncio.create_subprocess_exec(
            "socat",
            "-",
            f"TCP:127.0.0.1:{ports['echo']}",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await proc.communicate(b"echo, RFC 862\n")
        assert (proc.returncode, out) == (0, b"echo, RFC 862\n")
