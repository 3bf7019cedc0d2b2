"""``portkit scan --detect=LEVEL``: how far down the probe ladder identification goes.

Through the command line, against real listeners on loopback: a light identification
makes fewer connections than a normal one, and ``all`` names a service that a normal
identification does not reach (ZooKeeper inside TLS, past the probes tried in TLS).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any, cast

import pytest

from portkit import UsageError
from portkit.cli import main
from portkit.cli.cmd_scan import _DETECT_LEVELS
from portkit.scan._identify import DETECT_LEVELS, detect_level, identify

from ._servers import drain_until_eof, self_signed_context

SRC = str(Path(__file__).resolve().parents[2] / "src")
FIXTURES = Path(__file__).resolve().parents[1] / "proto" / "fixtures"
HOST = "127.0.0.1"


async def _scan(port: int, *flags: str) -> dict[str, Any]:
    """Run ``portkit scan HOST -p PORT FLAGS -o json`` in a process of its own."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "portkit", "scan", HOST, "-p", str(port), *flags, "-o", "json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": SRC},
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    doc = json.loads(out)
    [result] = [r for h in doc["hosts"] for r in h["ports"]]
    assert result["state"] == "open"
    return dict(result)


async def _count_connections(*flags: str) -> int:
    """Connections a scan of one silent listener makes with ``flags``."""
    accepted = 0

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal accepted
        accepted += 1
        with contextlib.suppress(ConnectionError):  # a probe that gave up resets
            await drain_until_eof(reader)
        writer.close()

    server = await asyncio.start_server(silent, HOST, 0)
    async with server:
        result = await _scan(server.sockets[0].getsockname()[1], *flags)
    assert result["identified"]["service"] is None  # it never says a word
    return accepted


async def test_light_makes_fewer_connections_than_normal() -> None:
    light = await _count_connections("--detect=light")
    normal = await _count_connections("--detect")
    # The scan's own connect, the listen-then-HTTP connection and the TLS handshake.
    assert light <= 3
    # Normal goes on to the generic probes, each on a connection of its own.
    assert normal > light + 10


def _zookeeper_in_tls(tmp: Path) -> tuple[Any, Any]:
    """A TLS server answering ZooKeeper's ``srvr`` as ZooKeeper 3.8 does (a capture),
    and closing on anything else (ZooKeeper's secure client port does the same)."""
    answer = (FIXTURES / "zookeeper-2181-tcp-zookeeper.bin").read_bytes()

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await reader.read(64)
            if request == b"srvr":
                writer.write(answer)
                await writer.drain()
        except (ConnectionError, OSError):
            pass  # a probe that gave up first
        writer.close()

    return session, self_signed_context(tmp)


async def test_all_reaches_a_service_normal_does_not(tmp_path: Path) -> None:
    session, context = _zookeeper_in_tls(tmp_path)
    server = await asyncio.start_server(session, HOST, 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    async with server:
        normal = await _scan(port, "--detect")
        everything = await _scan(port, "--detect=all")
    assert normal["identified"]["service"] == "tls"  # TLS, the protocol inside not found
    found = everything["identified"]
    assert (found["service"], found["product"], found["version"]) == (
        "zookeeper",
        "Apache ZooKeeper",
        "3.8.0",
    )
    assert found["tls"] is not None
    assert found["probe"] == "tls+zookeeper-srvr"


def test_the_cli_knows_every_level() -> None:
    assert _DETECT_LEVELS == DETECT_LEVELS


@pytest.mark.parametrize("argv", [["--detect=most"], ["--detect=", "-p", "1"]])
def test_a_bad_level_is_one_line_exit_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["scan", HOST, *argv]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "--detect" in err


async def test_a_bad_level_to_the_library_names_it() -> None:
    with pytest.raises(UsageError, match="'most'"):
        await identify(HOST, 1, level="most")
    with pytest.raises(UsageError, match="'most'"), detect_level("most"):
        pass


@pytest.mark.parametrize("flag", ["--detect", "-sV"])
def test_detect_before_a_target_still_scans_that_target(
    flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # The level is optional and given with "=": the word after --detect is a target.
    with socket.socket() as closed:
        closed.bind((HOST, 0))  # bound, not listening: refused
        port = closed.getsockname()[1]
        assert main(["scan", flag, HOST, "-p", str(port), "-o", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    [result] = [r for h in doc["hosts"] for r in h["ports"]]
    assert (result["host"], result["port"], result["state"]) == (HOST, port, "closed")


class _Radius(asyncio.DatagramProtocol):
    """Counts datagrams; rejects an Access-Request (RFC 2865 §4.1) at once."""

    def __init__(self) -> None:
        self.received = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        self.received += 1
        if data[:1] == b"\x01":
            self.transport.sendto(b"\x03" + data[1:2] + (20).to_bytes(2, "big") + bytes(16), addr)


async def _udp_identify(level: str) -> tuple[int, str | None]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((HOST, 0))
    transport, server = await asyncio.get_running_loop().create_datagram_endpoint(
        _Radius, sock=sock
    )
    try:
        async with asyncio.timeout(20):
            found = await identify(HOST, sock.getsockname()[1], transport="udp", level=level)
    finally:
        transport.close()
    return server.received, found.service


async def test_light_udp_sends_only_the_common_probes() -> None:
    light = await _udp_identify("light")
    normal = await _udp_identify("normal")
    assert light == (4, None)  # DNS, NTP, SNMP v3 and v2c; RADIUS is not among them
    assert normal[1] == "radius"
    assert normal[0] > 4


async def test_the_level_reaches_the_workers_of_a_sharded_scan() -> None:
    # --workers runs shards in Dask worker processes: the level set by the command must
    # travel with each shard, not stay in the command's own context.
    light = await _count_connections("--detect=light", "--workers", "1")
    assert light <= 3
