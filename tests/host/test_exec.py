"""The exec kind: argv without a shell, socket as stdio, peer in env, xinetd-style limits."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from pathlib import Path

import pytest

from portkit.host._host import Host
from tests.host._helpers import eventually, running_host


def config(argv: list[str], **options: object) -> str:
    extra = "".join(f"{k} = {json.dumps(v)}\n" for k, v in options.items())
    return f'[apps.x]\nkind = "exec"\nlisten = "127.0.0.1:0"\nargv = {json.dumps(argv)}\n{extra}'


async def talk(host: Host, data: bytes = b"", *, eof: bool = True) -> bytes:
    reader, writer = await asyncio.open_connection(*host.bound("x")[0])
    writer.write(data)
    if eof:
        writer.write_eof()
    try:
        return await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()


async def test_socket_is_stdin_and_stdout(tmp_path: Path) -> None:
    async with running_host(config(["/bin/cat"]), tmp_path) as host:
        assert await talk(host, b"through a program\n") == b"through a program\n"


async def test_argv_is_not_interpreted_by_a_shell(tmp_path: Path) -> None:
    argv = ["/bin/echo", "$HOME;", "ls", "`id`", "*"]
    async with running_host(config(argv), tmp_path) as host:
        assert await talk(host) == b"$HOME; ls `id` *\n"


async def test_peer_address_and_configured_env(tmp_path: Path) -> None:
    async with running_host(config(["/usr/bin/env"], env=["GREETING=hi there"]), tmp_path) as host:
        server_port = host.bound("x")[0][1]
        reader, writer = await asyncio.open_connection("127.0.0.1", server_port)
        local_port = writer.get_extra_info("sockname")[1]
        output = await reader.read()
        writer.close()
        await writer.wait_closed()
    env = dict(line.split("=", 1) for line in output.decode().splitlines())
    assert env["REMOTE_ADDR"] == env["REMOTE_HOST"] == env["TCPREMOTEIP"] == "127.0.0.1"
    assert env["REMOTE_PORT"] == env["TCPREMOTEPORT"] == str(local_port)
    assert env["TCPLOCALPORT"] == str(server_port)
    assert env["PROTO"] == "TCP"
    assert env["GREETING"] == "hi there"
    assert "PYTEST_CURRENT_TEST" not in env  # the host's environment is not leaked


async def hold(host: Host) -> asyncio.StreamWriter:
    """Open a connection to a `cat` and prove the program runs (round trip)."""
    reader, writer = await asyncio.open_connection(*host.bound("x")[0])
    writer.write(b"ping\n")
    assert await reader.readline() == b"ping\n"
    return writer


async def refused(host: Host) -> bool:
    reader, writer = await asyncio.open_connection(*host.bound("x")[0])
    writer.write(b"ping\n")
    try:
        data = await reader.read()
    except ConnectionResetError:
        data = b""
    writer.close()
    await writer.wait_closed()
    return data == b""


@pytest.mark.parametrize("limit", ["instances", "per_source"])
async def test_instances_and_per_source_limits(tmp_path: Path, limit: str) -> None:
    async with running_host(config(["/bin/cat"], **{limit: 2}), tmp_path) as host:
        held = [await hold(host), await hold(host)]
        assert await refused(host)
        assert host.apps["x"].counters.rejected == 1
        held.pop().close()
        counters = host.apps["x"].counters
        await eventually(lambda: counters.connections_open == 1, "one program ended")
        held.append(await hold(host))  # room again
        for writer in held:
            writer.close()
            await writer.wait_closed()


async def test_cps_limit_pauses_the_service(tmp_path: Path) -> None:
    async with running_host(config(["/bin/echo", "hi"], cps=3, cps_wait=600), tmp_path) as host:
        answers = [await talk(host) for _ in range(3)]
        assert answers == [b"hi\n"] * 3
        # Three in (much) less than the 600 s pause: the fourth opens the pause, and
        # every later one within it is refused too.
        assert await refused(host)
        assert await refused(host)
        assert host.apps["x"].counters.rejected == 2


async def test_timeout_ends_the_program(tmp_path: Path) -> None:
    async with running_host(config(["/bin/sleep", "60"], timeout=0.2), tmp_path) as host:
        assert await talk(host, eof=False) == b""
        counters = host.apps["x"].counters
        await eventually(lambda: counters.connections_open == 0, "program ended")
        assert counters.errors == 1  # killed: non-zero status


async def test_stderr_goes_to_the_log(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="portkit.host.app.x")
    argv = ["/bin/sh", "-c", "echo out; echo 'something went wrong' >&2"]
    async with running_host(config(argv), tmp_path) as host:
        assert await talk(host) == b"out\n"
        await eventually(lambda: "something went wrong" in caplog.text, "stderr line logged")


async def test_stop_ends_running_programs_after_grace(tmp_path: Path) -> None:
    async with running_host(config(["/bin/cat"]), tmp_path, grace=0.1) as host:
        writer = await hold(host)
        app = host.apps["x"]
    # stop() returned: the program got 0.1 s, then SIGTERM, and the connection is gone
    assert app.counters.connections_open == 0
    assert host.apps == {}
    writer.close()
    await writer.wait_closed()


def test_program_must_exist(tmp_path: Path) -> None:
    from portkit import ConfigError
    from portkit.host._config import parse_config

    with pytest.raises(ConfigError, match=r"argv: program '/no/such/prog' not found"):
        parse_config(config(["/no/such/prog"]))
    with pytest.raises(ConfigError, match=r"env: entries are NAME=value"):
        parse_config(config(["/bin/cat"], env=["novalue"]))


async def test_a_burst_starts_no_more_programs_than_instances(tmp_path: Path) -> None:
    # Each program notes that it started, then holds its connection (cat) until closed.
    marks = tmp_path / "started"
    argv = ["/bin/sh", "-c", f'echo started >> "{marks}"; exec cat']
    async with running_host(config(argv, instances=3), tmp_path) as host:
        address = host.bound("x")[0]
        # Ten connections made back to back, before the event loop runs again: the
        # accept loop finds all ten queued at once.
        clients = [socket.create_connection(address, timeout=10) for _ in range(10)]
        counters = host.apps["x"].counters
        await eventually(lambda: counters.rejected == 7, "seven of ten refused")
        await eventually(lambda: marks.exists() and len(marks.read_text().split()) >= 3, "3 ran")
        for client in clients:
            client.close()
        await eventually(lambda: counters.connections_open == 0, "every program ended")
    assert marks.read_text().split() == ["started"] * 3


async def test_a_program_ignoring_sigterm_is_killed_before_stop_returns(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    # sh sets SIGTERM to ignored, which the exec'd sleep inherits.
    argv = ["/bin/sh", "-c", f"trap '' TERM; echo $$ > {pidfile}; exec sleep 60"]
    async with running_host(config(argv), tmp_path, grace=0.1) as host:
        _reader, writer = await asyncio.open_connection(*host.bound("x")[0])
        await eventually(lambda: pidfile.exists() and pidfile.read_text().strip() != "", "ran")
    pid = int(pidfile.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()
