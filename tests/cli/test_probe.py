"""``portkit probe``: real servers on loopback, bad input, refused and silent endpoints."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from collections.abc import Iterator

import pytest
from aiohttp import web

from portkit.cli import main
from tests.scan._servers import FIXTURES, greeter, serve

HOST = "127.0.0.1"


async def run_cli(*args: str) -> tuple[int, str, str]:
    """Run ``python -m portkit ARGS`` without blocking the loop the test servers run on."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "portkit", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_probe_json_names_aiohttp() -> None:
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, HOST, 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        code, out, err = await run_cli("probe", f"http://{HOST}:{port}/", "--json")
    finally:
        await runner.cleanup()
    assert code == 0, err
    doc = json.loads(out)
    assert doc["port"] == port
    assert doc["port_source"] == "explicit"
    assert doc["expected"] == "http"
    assert doc["identified"]["service"] == "http"
    assert doc["identified"]["product"] == "aiohttp"
    assert doc["matches_expected"] is True
    assert doc["connect_ms"] >= 0


async def test_probe_human_output_for_ssh_on_a_web_port() -> None:
    banner = (FIXTURES / "ssh-22-tcp.bin").read_bytes()
    async with serve(greeter(banner)) as port:
        code, out, err = await run_cli("probe", f"http://{HOST}:{port}/")
    assert code == 0, err
    assert f"probe {HOST}:{port}/tcp" in out
    assert "answers    ssh: OpenSSH 9.2p1" in out
    assert "expected   http, but ssh answers" in out
    assert "SSH-2.0-OpenSSH_9.2p1" in out  # the evidence


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["probe", "127.0.0.1:70000"], "70000"),
        (["probe", "127.0.0.1", "nosuchservice"], "nosuchservice"),
        (["probe", "127.0.0.1:0"], "0"),
        (["probe", "127.0.0.1:22", "--budget", "0"], "--budget"),
        (["probe", "http://[::1"], "::1"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert needle in err


def test_refused_is_exit_3(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port = sock.getsockname()[1]
    assert main(["probe", f"{HOST}:{port}"]) == 3
    err = capsys.readouterr().err
    assert "connection refused" in err
    assert str(port) in err


@pytest.fixture
def full_backlog() -> Iterator[int]:
    """A listener that never accepts, with its accept queue full: new SYNs go unanswered."""
    with socket.socket() as listener:
        listener.bind((HOST, 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        with socket.create_connection((HOST, port), timeout=5):
            yield port


def test_no_answer_is_exit_4(full_backlog: int, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["probe", f"{HOST}:{full_backlog}", "--budget", "1"]) == 4
    assert "timed out" in capsys.readouterr().err


def test_help_has_examples(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["probe", "--help"]) == 0
    out = capsys.readouterr().out
    assert "portkit probe 127.0.0.1:22" in out


def test_closed_udp_port_is_exit_3(capsys: pytest.CaptureFixture[str]) -> None:
    # A closed UDP port answers with ICMP port unreachable: exit 3, as for TCP.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        port = sock.getsockname()[1]
    assert main(["probe", f"{HOST}:{port}", "--udp"]) == 3
    err = capsys.readouterr().err
    assert f"{HOST}:{port}/udp" in err
    assert "port unreachable" in err


def test_refused_tcp_suggests_udp(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port = sock.getsockname()[1]
    assert main(["probe", HOST, str(port)]) == 3
    assert "--udp" in capsys.readouterr().err
