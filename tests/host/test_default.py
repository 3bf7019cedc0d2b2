"""`portkit serve` with no configuration: the computer of the ports description."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
from pathlib import Path

import pytest

from portkit.host._default import DEFAULT_PORTS, default_config, default_ports
from portkit.host._host import Host
from tests.host._helpers import curl, url


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def test_ports_are_well_known_as_root_and_alternates_otherwise() -> None:
    ports = default_ports()
    for app, (well_known, alternate) in DEFAULT_PORTS.items():
        if os.geteuid() == 0 and _bindable(well_known):
            assert ports[app] == well_known, app
        elif _bindable(alternate):
            assert ports[app] == alternate, app
        else:  # both taken: another port, free when chosen
            assert ports[app] not in (well_known, alternate), app
            assert ports[app] > 0, app
    assert len(set(ports.values())) == len(ports)
    assert DEFAULT_PORTS["web"] == (80, 8080)
    assert DEFAULT_PORTS["smtp"] == (25, 2525)


def test_a_taken_port_gives_way() -> None:
    web_port = 80 if os.geteuid() == 0 else 8080
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            holder.bind(("127.0.0.1", web_port))
        except OSError:
            pytest.skip(f"port {web_port} is held by another program already")
        holder.listen()
        ports = default_ports()
    assert ports["web"] != web_port
    assert len(set(ports.values())) == len(ports)


def test_an_application_whose_ports_are_all_taken_gets_a_free_one() -> None:
    well_known, alternate = DEFAULT_PORTS["web"]
    with contextlib.ExitStack() as held:
        for port in {well_known, alternate}:
            if _bindable(port):  # otherwise taken already (or privileged): as good
                holder = held.enter_context(socket.socket())
                holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                holder.bind(("127.0.0.1", port))
                holder.listen()
        assert not _bindable(well_known)
        assert not _bindable(alternate)
        ports = default_ports()
    assert ports["web"] not in (well_known, alternate)
    assert ports["web"] > 0
    assert len(set(ports.values())) == len(ports)


async def test_demo_serves_the_site_the_login_page_and_the_video(tmp_path: Path) -> None:
    config = default_config(tmp_path, ports=dict.fromkeys(DEFAULT_PORTS, 0))
    names = [app.name for app in config.apps]
    mail = importlib.util.find_spec("portkit.host.apps.mail") is not None
    assert names == ["web", "video", *(["smtp", "pop3", "imap"] if mail else []), "console"]
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
        assert b'src="testcard.webm"' in page
        rc, clip, _ = await curl("-r", "0-3", url(host, "video", "/testcard.webm"))
        assert clip == bytes.fromhex("1a45dfa3")  # the EBML magic: a WebM file
    finally:
        await host.stop(1.0)
