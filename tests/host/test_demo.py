"""`portkit serve` with no configuration: the computer of the ports description."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

from portkit.host._demo import DEMO_PORTS, demo_config, demo_ports
from portkit.host._host import Host
from tests.host._helpers import curl, url


def test_ports_are_well_known_as_root_and_alternates_otherwise() -> None:
    expected = {app: pair[0] if os.geteuid() == 0 else pair[1] for app, pair in DEMO_PORTS.items()}
    assert demo_ports() == expected
    assert DEMO_PORTS["web"] == (80, 8080)
    assert DEMO_PORTS["smtp"] == (25, 2525)


async def test_demo_serves_the_site_the_login_page_and_the_video(tmp_path: Path) -> None:
    config = demo_config(tmp_path, ports=dict.fromkeys(DEMO_PORTS, 0))
    names = [app.name for app in config.apps]
    mail = importlib.util.find_spec("portkit.host.apps.mail") is not None
    assert names == ["web", "video", *(["smtp", "pop3", "imap"] if mail else [])]
    assert all(str(a) == "127.0.0.1:0" for app in config.apps for a in app.listen)
    host = Host(config, status_file=tmp_path / "status.json")
    await host.start()
    try:
        rc, page, _ = await curl("-L", url(host, "web", "/login"))
        assert rc == 0
        assert b"<h1>Log in</h1>" in page
        rc, page, _ = await curl(url(host, "web", "/"))
        assert b"One address, many applications" in page
        rc, page, _ = await curl(url(host, "video", "/"))
        if shutil.which("ffmpeg"):
            assert b'src="testcard.webm"' in page
    finally:
        await host.stop(1.0)
