"""One-line servers: ``portkit serve DIR``, ``serve --mail``, configuration discovery."""

from __future__ import annotations

import imaplib
import os
import poplib
import signal
import smtplib
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from portkit.cli import main
from portkit.cli.cmd_serve import discover_config
from portkit.host._oneline import first_free_port
from portkit.host.apps import KIND_MODULES
from tests.host._helpers import SRC, ServeProcess, addresses


def _site(tmp: Path) -> Path:
    root = tmp / "public"
    root.mkdir()
    (root / "hello.txt").write_text("hello from a directory\n")
    return root


def _curl(*args: str) -> str:
    done = subprocess.run(
        ["curl", "-sS", "--max-time", "20", *args], capture_output=True, check=True, timeout=30
    )
    return done.stdout.decode()


def test_a_directory_on_a_chosen_port_over_http_and_https(tmp_path: Path) -> None:
    root = _site(tmp_path)
    port = first_free_port("127.0.0.1", 20000)
    with ServeProcess(root, tmp_path, "--port", str(port)) as serve:
        doc = serve.start()
        assert addresses(doc, "files") == [("127.0.0.1", port)]
        assert _curl(f"http://127.0.0.1:{port}/hello.txt") == "hello from a directory\n"
        assert "hello.txt" in _curl(f"http://127.0.0.1:{port}/")  # a listing, as http.server
        serve.signal(signal.SIGTERM)
        assert serve.wait() == 0
    # Each request on stderr, in the Combined Log Format (as http.server and nginx show them).
    requests = [line for line in serve.stderr().splitlines() if '"GET /' in line]
    assert len(requests) == 2, serve.stderr()
    assert requests[0].startswith("127.0.0.1 - - ["), requests
    assert '"GET /hello.txt HTTP/1.1" 200 23 "-" "curl/' in requests[0], requests
    (tmp_path / "ready.json").unlink()
    (tmp_path / "notify.sock").unlink()
    with ServeProcess(root, tmp_path, "--port", "0", "--tls") as serve:
        doc = serve.start()
        [(_, tls_port)] = addresses(doc, "files")
        assert _curl("-k", f"https://127.0.0.1:{tls_port}/hello.txt") == "hello from a directory\n"


def test_a_directory_without_port_takes_8000_or_the_next_free_one_and_prints_it(
    tmp_path: Path,
) -> None:
    root = _site(tmp_path)
    with socket.socket() as holder:  # whatever else holds 8000, this holds the first free one
        holder.bind(("127.0.0.1", first_free_port("127.0.0.1", 8000)))
        held = holder.getsockname()[1]
        proc = subprocess.Popen(
            [sys.executable, "-m", "portkit", "serve", str(root)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": str(SRC)},
        )
        try:
            assert proc.stdout is not None
            lines = [proc.stdout.readline().decode() for _ in range(2)]  # header, one row
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
            assert proc.stdout is not None
            proc.stdout.close()
    url = lines[1].split()[-1]
    port = int(url.rstrip("/").rpartition(":")[2])
    assert port > held >= 8000, lines
    assert url == f"http://127.0.0.1:{port}/"


def test_first_free_port_skips_taken_ports() -> None:
    with socket.socket() as first:
        first.bind(("127.0.0.1", 0))
        first.listen()
        taken = first.getsockname()[1]
        found = first_free_port("127.0.0.1", taken)
    assert found > taken or found == 0


def test_mail_sink_keeps_mail_in_maildir_across_restarts(tmp_path: Path) -> None:
    maildir = tmp_path / "kept"
    for round_ in range(2):
        for leftover in ("ready.json", "notify.sock"):
            (tmp_path / leftover).unlink(missing_ok=True)
        with ServeProcess(None, tmp_path, "--mail", "--maildir", str(maildir)) as serve:
            doc = serve.start()
            apps = ["smtp", "pop3", "imap"] + (["console"] if "console" in KIND_MODULES else [])
            assert [a["name"] for a in doc["apps"]] == apps
            for app in apps:
                assert [h for h, _ in addresses(doc, app)] == ["127.0.0.1"]
            [(_, smtp)] = addresses(doc, "smtp")
            [(_, pop3)] = addresses(doc, "pop3")
            [(_, imap)] = addresses(doc, "imap")
            if round_ == 0:
                with smtplib.SMTP("127.0.0.1", smtp, timeout=20) as client:
                    client.sendmail(
                        "app@example.test",
                        ["someone@anywhere.example"],
                        b"Subject: sink\r\n\r\ncaught\r\n",
                    )
            # Second round: a new process finds the mail of the first. Any login opens
            # the one mailbox.
            pop = poplib.POP3("127.0.0.1", pop3, timeout=20)
            pop.user(f"anyone{round_}")
            pop.pass_("whatever")
            count, _ = pop.stat()
            pop.quit()
            assert count == 1
            with imaplib.IMAP4("127.0.0.1", imap, timeout=20) as box:
                box.login("someone.else", f"pass {round_}")
                status, data = box.select("INBOX", readonly=True)
                assert (status, data) == ("OK", [b"1"])
            serve.signal(signal.SIGTERM)
            assert serve.wait() == 0


def test_mail_sink_without_maildir_removes_its_store(tmp_path: Path) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    with ServeProcess(None, tmp_path, "--mail", env={"TMPDIR": str(scratch)}) as serve:
        serve.start()
        assert [p.name[:13] for p in scratch.iterdir()] == ["portkit-mail-"]
        serve.signal(signal.SIGTERM)
        assert serve.wait() == 0
    assert list(scratch.iterdir()) == []


@pytest.mark.parametrize(
    ("argv", "quoted"),
    [
        (["serve", "no/such/dir"], "'no/such/dir'"),
        (["serve", ".", "--port", "70000"], "port must be 0-65535, not '70000'"),
        (["serve", ".", "--bind", "example.com"], "'example.com'"),
        (["serve", "--port", "8000"], "--port is for serving a directory"),
        (["serve", "--mail", "--tls"], "--tls is for serving a directory"),
        (["serve", "--maildir", "m"], "--maildir goes with --mail"),
        (["serve", "--demo", "--mail"], "--demo runs the demo computer alone"),
        (["serve", ".", "--check"], "--check and --status read a configuration"),
    ],
)
def test_bad_flags_are_one_line_and_exit_2(
    argv: list[str], quoted: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert quoted in err
    assert len(err.strip().splitlines()) == 1, err


def test_discovery_order(tmp_path: Path) -> None:
    cwd, xdg, home = tmp_path / "project", tmp_path / "xdg", tmp_path / "home"
    for d in (cwd, xdg / "portkit", home / ".config" / "portkit"):
        d.mkdir(parents=True)
    env = {"XDG_CONFIG_HOME": str(xdg), "HOME": str(home)}
    assert discover_config(cwd, env) is None
    (home / ".config" / "portkit" / "serve.toml").write_text("")
    assert discover_config(cwd, {"HOME": str(home)}) == home / ".config/portkit/serve.toml"
    assert discover_config(cwd, {"XDG_CONFIG_HOME": "", "HOME": str(home)}) == (
        home / ".config/portkit/serve.toml"
    )
    assert discover_config(cwd, env) is None  # XDG_CONFIG_HOME set: ~/.config is not looked at
    (xdg / "portkit" / "serve.toml").write_text("")
    assert discover_config(cwd, env) == xdg / "portkit" / "serve.toml"
    (cwd / "portkit.toml").write_text("")
    assert discover_config(cwd, env) == cwd / "portkit.toml"


def test_check_finds_portkit_toml_in_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _site(tmp_path)
    (tmp_path / "portkit.toml").write_text(
        '[apps.here]\nkind = "web"\nlisten = "127.0.0.1:0"\nroot = "public"\n'
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "nothing"))
    assert main(["serve", "--check"]) == 0
    out = capsys.readouterr().out
    assert "here" in out
    assert "portkit.toml: ok, 1 application\n" in out


@pytest.mark.parametrize(
    ("listen", "extra", "message"),
    [
        ("0.0.0.0:0", 'catch_all = "dev"\n', "any_login: is for loopback addresses only"),
        ("127.0.0.1:0", "", "any-login: needs catch-all"),
    ],
)
def test_any_login_needs_loopback_and_a_catch_all(
    tmp_path: Path, listen: str, extra: str, message: str
) -> None:
    from portkit._errors import ConfigError
    from portkit.host._config import parse_config
    from portkit.host.apps.mail import hash_password

    users = f'["dev:{hash_password("dev", n=16, r=1, p=1)}"]'
    text = (
        f'[apps.pop]\nkind = "pop3"\nlisten = "{listen}"\nusers = {users}\n'
        f"any_login = true\n{extra}"
    )
    with pytest.raises(ConfigError, match=message):
        parse_config(text, base_dir=tmp_path)


@pytest.mark.parametrize(
    ("flags", "table", "ready_line"), [(["-q"], False, False), ([], True, True)]
)
def test_quiet_prints_no_table_and_no_news(
    tmp_path: Path, flags: list[str], table: bool, ready_line: bool
) -> None:
    root = _site(tmp_path)
    with ServeProcess(root, tmp_path, "--port", "0", *flags) as serve:
        serve.start()
        serve.signal(signal.SIGTERM)
        assert serve.wait() == 0
    assert ("APP" in serve.stdout()) == table, serve.stdout()
    assert ("ready:" in serve.stderr()) == ready_line, serve.stderr()
    assert ('"GET' in serve.stderr()) is False  # no request was made: no access lines either


def test_demo_ignores_a_configuration_that_would_be_found(tmp_path: Path) -> None:
    # `portkit demo` runs `serve --demo`: a user's own serve.toml must not replace the demo.
    (tmp_path / "xdg" / "portkit").mkdir(parents=True)
    (tmp_path / "xdg" / "portkit" / "serve.toml").write_text(
        '[apps.mine]\nkind = "echo"\nlisten = "127.0.0.1:0"\n'
    )
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    for flags, names in ((["--demo"], {"web", "video"}), ([], {"mine"})):
        for leftover in ("ready.json", "notify.sock"):
            (tmp_path / leftover).unlink(missing_ok=True)
        with ServeProcess(None, tmp_path, *flags, env=env) as serve:
            doc = serve.start()
            serve.signal(signal.SIGTERM)
            assert serve.wait() == 0
        assert names <= {a["name"] for a in doc["apps"]}


def test_the_help_and_the_host_agree_on_the_defaults() -> None:
    # cmd_serve restates two constants so that building its parser imports no host code.
    from portkit.cli import cmd_serve
    from portkit.host import _oneline

    assert cmd_serve.DIRECTORY_PORT == _oneline.DIRECTORY_PORT
    assert cmd_serve.MAIL_USER == _oneline.MAIL_USER
