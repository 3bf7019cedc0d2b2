"""Configuration: validation errors name file, line and key; --check; nothing half-starts."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portkit import ConfigError
from portkit.cli import main
from portkit.host import Where
from portkit.host._config import load_config, parse_config
from portkit.host._host import Host

GOOD = """\
[host]
grace = 3

[apps.site]
kind = "web"
listen = ["127.0.0.1:0", "[::1]:0"]
root = "public"

[apps.echo]
kind = "echo"
listen = "127.0.0.1:7007"
"""


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "public").mkdir()
    return tmp_path


def write(base: Path, text: str) -> Path:
    path = base / "serve.toml"
    path.write_text(text)
    return path


def test_good_config_loads(site: Path) -> None:
    config = load_config(write(site, GOOD))
    assert [a.name for a in config.apps] == ["site", "echo"]
    web = config.app("site")
    assert [str(a) for a in web.listen] == ["127.0.0.1:0", "[::1]:0"]
    assert web.options.root == site / "public"
    assert config.host.grace == 3.0
    assert str(config.app("echo").listen[0]) == "127.0.0.1:7007"


def test_service_names_and_bare_ports_default_to_loopback(site: Path) -> None:
    config = parse_config(
        '[apps.e]\nkind = "echo"\nlisten = ["echo", "8007", "[::1]:http", "0.0.0.0:smtp"]\n'
    )
    assert [str(a) for a in config.app("e").listen] == [
        "127.0.0.1:7",
        "127.0.0.1:8007",
        "[::1]:80",
        "0.0.0.0:25",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            GOOD.replace("grace = 3", "grace = 3\ncolour = 1"),
            "serve.toml:3: [host] colour: unknown key",
        ),
        (
            GOOD.replace('root = "public"', 'root = "public"\nfancy = true'),
            "serve.toml:8: [apps.site] fancy: unknown key",
        ),
        (
            GOOD.replace('"127.0.0.1:7007"', '"127.0.0.1:70000"'),
            "serve.toml:11: [apps.echo] listen: port must be 0-65535, not 70000",
        ),
        (
            GOOD.replace('"127.0.0.1:7007"', '"127.0.0.1:nosuchsvc"'),
            "serve.toml:11: [apps.echo] listen: unknown service 'nosuchsvc'",
        ),
        (
            GOOD.replace('root = "public"', 'root = "missing"'),
            "serve.toml:7: [apps.site] root: directory",
        ),
        (
            GOOD.replace('kind = "echo"', 'kind = "gopher"'),
            "serve.toml:10: [apps.echo] kind: unknown kind 'gopher'",
        ),
        (
            GOOD.replace('kind = "echo"\n', ""),
            "serve.toml:9: [apps.echo] missing required key 'kind'",
        ),
        (
            GOOD.replace("grace = 3", "grace = -1"),
            "serve.toml:2: [host] grace: must be at least 0, not -1",
        ),
        (
            GOOD.replace('"127.0.0.1:7007"', '"example.com:7"'),
            "serve.toml:11: [apps.echo] listen: listen host must be an IP address",
        ),
        (
            GOOD + '\n[apps.other]\nkind = "echo"\nlisten = "127.0.0.1:7007"\n',
            "serve.toml:15: [apps.other] listen: 127.0.0.1:7007 is already used by [apps.echo]",
        ),
        (
            GOOD + '\n[apps.other]\nkind = "echo"\nlisten = "0.0.0.0:7007"\n',
            "serve.toml:15: [apps.other] listen: 0.0.0.0:7007 is already used by [apps.echo]",
        ),
        ('[apps.x]\nkind = "echo"\nlisten = [\n', "serve.toml: invalid TOML"),
        ("[host]\n", "serve.toml:1: no applications"),
        (
            "[apps.site]\nkind = 'web'\nlisten = '8080'\n",
            "serve.toml:1: [apps.site] missing required key 'root'",
        ),
    ],
)
def test_errors_name_file_line_and_key(site: Path, text: str, expected: str) -> None:
    path = write(site, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{site}/{expected}"), message
    assert "\n" not in message


def test_mail_kinds_fail_cleanly_when_not_installed(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import portkit.host.apps as apps

    # An installation without the mail module: the kind is known, its module is missing.
    modules = {**apps.KIND_MODULES, "smtp": "portkit.host.apps.mail_not_installed"}
    monkeypatch.setattr(apps, "KIND_MODULES", modules)
    with pytest.raises(ConfigError, match=r"\[apps.mx\] kind: kind 'smtp' is not available"):
        parse_config("[apps.mx]\nkind = 'smtp'\nlisten = '2525'\n")


def test_check_cli_ok_and_error(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(site, GOOD)
    assert main(["serve", "--check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "site" in out
    assert "[::1]:0" in out
    assert "ok, 2 applications" in out
    write(site, GOOD.replace('"127.0.0.1:7007"', '"127.0.0.1:70000"'))
    assert main(["serve", "--check", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "serve.toml:11: [apps.echo] listen: port must be 0-65535, not 70000" in err[0]


async def test_nothing_starts_when_one_listener_cannot_bind(site: Path) -> None:
    """One busy port: the other applications must not be left running or bound."""
    busy = socket.create_server(("127.0.0.1", 0))
    try:
        port = busy.getsockname()[1]
        text = (
            '[apps.a]\nkind = "echo"\nlisten = "127.0.0.1:0"\n'
            f'[apps.b]\nkind = "echo"\nlisten = "127.0.0.1:{port}"\n'
        )
        host = Host(parse_config(text), status_file=site / "status.json")
        with pytest.raises(Exception, match=f"cannot listen on 127.0.0.1:{port} for \\[apps.b\\]"):
            await host.start()
        assert host.apps == {}
        assert host._sockets == {}
        assert not (site / "status.json").exists()
    finally:
        busy.close()


def test_reference_documents_every_option() -> None:
    import dataclasses

    from portkit.host._config import HostOptions
    from portkit.host.apps import KIND_MODULES, load_kind

    doc = (Path(__file__).parents[2] / "docs" / "serve.md").read_text()
    kinds = {name for name, module in KIND_MODULES.items() if not module.endswith(".mail")}
    classes: list[Any] = [HostOptions, *(load_kind(k).options for k in sorted(kinds))]
    for cls in classes:
        for field in dataclasses.fields(cls):
            assert f"`{field.name}`" in doc, f"docs/serve.md does not describe {field.name}"
    for kind in kinds:
        assert f"**{kind}**" in doc


def test_access_log_key_accepts_both_spellings(site: Path) -> None:
    text = GOOD.replace('root = "public"', 'root = "public"\naccess-log = "a.log"')
    assert parse_config(text, base_dir=site).app("site").access_log == site / "a.log"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_text_is_a_config_error_or_a_config(text: str) -> None:
    message = ""
    try:
        parse_config(text)
    except ConfigError as exc:
        message = str(exc)
    assert "\n" not in message  # one line, whatever the input


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=40), st.from_regex(r"\[?[0-9a-f:.]{0,20}\]?:[0-9a-z]{0,7}")))
def test_arbitrary_listen_text_is_an_address_or_a_config_error(text: str) -> None:
    from portkit.host._config import parse_listen

    where = Where(file="f", table="apps.x", line_of=lambda _key: 1)
    try:
        address = parse_listen(text, where)
    except ConfigError:
        return
    assert 0 <= address.port <= 65535
    assert address.host  # an IP literal


#: A minimal valid table of each kind, to which one option under test is added.
MINIMAL = {
    "web": 'root = "public"\n',
    "video": 'root = "public"\n',
    "forward": 'to = "127.0.0.1:9"\n',
    "exec": 'argv = ["/bin/cat"]\n',
    "echo": "",
}


def float_options() -> list[tuple[str, str]]:
    """(table, key) of every float option of [host] and of each kind above."""
    import dataclasses
    import typing

    from portkit.host._config import HostOptions
    from portkit.host.apps import load_kind

    found: list[tuple[str, str]] = []
    for table, cls in [("host", HostOptions)] + [
        (kind, load_kind(kind).options) for kind in MINIMAL
    ]:
        hints = typing.get_type_hints(cls)
        found.extend((table, f.name) for f in dataclasses.fields(cls) if hints[f.name] is float)
    return found


@pytest.mark.parametrize(("table", "key"), float_options())
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "+nan"])
def test_non_finite_numbers_are_refused(site: Path, table: str, key: str, value: str) -> None:
    if table == "host":
        text = f"[host]\n{key} = {value}\n[apps.e]\nkind = 'echo'\nlisten = '127.0.0.1:0'\n"
        expected = f"serve.toml:2: [host] {key}: must be a finite number, not {value.lstrip('+')}"
    else:
        text = (
            f"[apps.a]\nkind = '{table}'\nlisten = '127.0.0.1:0'\n{MINIMAL[table]}{key} = {value}\n"
        )
        line = 4 + MINIMAL[table].count("\n")
        expected = f"serve.toml:{line}: [apps.a] {key}: must be a finite number, not"
    with pytest.raises(ConfigError) as info:
        load_config(write(site, text))
    assert str(info.value).startswith(f"{site}/{expected}"), str(info.value)


def test_check_refuses_grace_nan_in_one_line(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(site, "[host]\ngrace = nan\n[apps.e]\nkind = 'echo'\nlisten = '127.0.0.1:0'\n")
    assert main(["serve", "--check", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"portkit: {path}:2: [host] grace: must be a finite number, not nan\n"
