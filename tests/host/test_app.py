"""The application interface: option parsing, the kind registry, StreamApplication."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from pathlib import Path

import pytest

from portkit import ConfigError
from portkit.host import AppContext, Listener, Where, parse_options
from portkit.host.apps import KIND_MODULES, load_kind
from portkit.host.apps.echo import EchoOptions


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Opts:
    root: Path
    count: int = dataclasses.field(default=3, metadata={"min": 1, "max": 10})
    ratio: float = 1.0
    names: tuple[str, ...] = ()
    flag: bool = False
    label: str | None = None


WHERE = Where(file="serve.toml", table="apps.x", line_of=lambda key: 7, base_dir=Path("/etc/pk"))


def test_parse_options_converts_types_and_resolves_relative_paths() -> None:
    opts = parse_options(
        Opts, {"root": "site", "count": 4, "ratio": 2, "names": ["a"], "flag": True}, WHERE
    )
    assert opts == Opts(root=Path("/etc/pk/site"), count=4, ratio=2.0, names=("a",), flag=True)
    assert parse_options(Opts, {"root": "/srv"}, WHERE).root == Path("/srv")


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"root": "s", "colour": 1}, "serve.toml:7: [apps.x] colour: unknown key"),
        ({}, "serve.toml:7: [apps.x] missing required key 'root'"),
        ({"root": "s", "count": "3"}, "serve.toml:7: [apps.x] count: must be an integer, not '3'"),
        ({"root": "s", "count": 11}, "serve.toml:7: [apps.x] count: must be at most 10, not 11"),
        ({"root": "s", "count": 0}, "serve.toml:7: [apps.x] count: must be at least 1, not 0"),
        ({"root": "s", "flag": 1}, "serve.toml:7: [apps.x] flag: must be true or false, not 1"),
        ({"root": "a\x00b"}, "serve.toml:7: [apps.x] root: must not contain a NUL character"),
        ({"root": "s", "names": [1]}, "serve.toml:7: [apps.x] names: must be a string, not 1"),
    ],
)
def test_parse_options_errors_name_file_line_and_key(
    table: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse_options(Opts, table, WHERE)
    assert str(info.value).startswith(message)


def test_kind_registry_lists_mail_kinds_and_loads_echo() -> None:
    assert {"smtp", "pop3", "imap"} <= set(KIND_MODULES)
    assert load_kind("echo").name == "echo"
    with pytest.raises(ConfigError, match="unknown kind 'gopher'"):
        load_kind("gopher")


def test_missing_kind_module_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import portkit.host.apps as apps

    monkeypatch.setattr(apps, "KIND_MODULES", {"smtp": "portkit.host.apps.no_such_module"})
    with pytest.raises(ConfigError, match="kind 'smtp' is not available"):
        load_kind("smtp")


async def test_stream_application_serves_counts_and_stops() -> None:
    kind = load_kind("echo")
    ctx = AppContext.for_app("e", "echo")
    app = kind.create(EchoOptions(), ctx)
    sock = socket.create_server(("127.0.0.1", 0))
    sock.setblocking(False)
    listener = Listener(sock=sock, endpoint="127.0.0.1:0")
    try:
        await app.start([listener])
        address = listener.address
        reader, writer = await asyncio.open_connection(*address)
        writer.write(b"hello\r\n")
        assert await reader.readexactly(7) == b"hello\r\n"
        assert ctx.counters.connections_open == 1
        writer.write_eof()
        assert await reader.read() == b""
        writer.close()
        await writer.wait_closed()
        await app.stop(1.0)
        snap = ctx.counters.snapshot()
        assert (snap.connections_total, snap.connections_open) == (1, 0)
        assert (snap.bytes_in, snap.bytes_out) == (7, 7)
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection(*address)
    finally:
        sock.close()


async def test_stop_aborts_connections_still_open_after_grace() -> None:
    ctx = AppContext.for_app("e", "echo")
    app = load_kind("echo").create(EchoOptions(), ctx)
    sock = socket.create_server(("127.0.0.1", 0))
    sock.setblocking(False)
    try:
        await app.start([Listener(sock=sock, endpoint="x")])
        reader, writer = await asyncio.open_connection(*sock.getsockname()[:2])
        writer.write(b"x")
        assert await reader.readexactly(1) == b"x"
        await app.stop(0.05)  # the client keeps its connection open: it is cut
        assert await reader.read() == b""
        assert ctx.counters.connections_open == 0
        writer.close()
        await writer.wait_closed()
    finally:
        sock.close()
