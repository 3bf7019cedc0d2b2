"""`portkit serve` with no configuration runs the console beside the other applications."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from portkit.host._default import CONSOLE_NEXT, DEFAULT_PORTS, default_config, default_ports
from portkit.host._host import Host
from tests.host.console.conftest import api, message, send


async def test_the_demo_console_listens_on_loopback_and_shows_the_demo_mail(
    tmp_path: Path,
) -> None:
    config = default_config(tmp_path, ports=dict.fromkeys(DEFAULT_PORTS, 0))
    console = config.app("console")
    assert [str(a) for a in console.listen] == ["127.0.0.1:0"]
    host = Host(config, status_file=tmp_path / "status.json")
    await host.start()
    try:
        [(address, _port)] = host.bound("console")
        assert address == "127.0.0.1"
        await send(host, message("to the demo", to="anyone@localhost"), app="smtp")
        doc = await api(host, "/api/v1/messages")
        assert isinstance(doc, dict)
        assert [m["Subject"] for m in doc["messages"]] == ["to the demo"]
        shown = await api(host, "/api/host")
        assert isinstance(shown, dict)
        kinds = {a["kind"] for a in shown["apps"]}
        assert {"web", "video", "smtp", "pop3", "imap", "console"} <= kinds
    finally:
        await host.stop(1.0)


def test_a_taken_8025_moves_the_console_to_the_next_free_port() -> None:
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            holder.bind(("127.0.0.1", 8025))
        except OSError:
            pytest.skip("port 8025 is held by another program already")
        holder.listen()
        ports = default_ports()
    assert ports["console"] in CONSOLE_NEXT
