"""``portkit listening``: the table, the one-line answer, JSON, and without root."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from portkit.cli import main
from tests.client.helpers import held_port

SRC = Path(__file__).resolve().parents[2] / "src"


def test_table_lists_the_listener_and_its_pid(capsys: pytest.CaptureFixture[str]) -> None:
    with held_port("tcp,udp6") as (port, pid):
        assert main(["listening"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["PROTO", "ADDRESS", "PORT", "SERVICE", "PID", "PROCESS", "USER"]
    rows = [line.split() for line in out[1:] if line.split()[2:3] == [str(port)]]
    assert sorted((r[0], r[1], r[4]) for r in rows) == [
        ("tcp", "127.0.0.1", str(pid)),
        ("udp", "::1", str(pid)),
    ]


def test_who_holds_port_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with held_port("tcp,tcp6") as (port, pid):
        assert main(["listening", "--port", str(port)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"port {port}")
    assert f"pid {pid}" in lines[0]
    assert "tcp 127.0.0.1" in lines[0]
    assert "tcp [::1]" in lines[0]


def test_nothing_listens_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    with held_port() as (port, _):
        pass
    assert main(["listening", "--port", str(port)]) == 1
    assert capsys.readouterr().out.strip() == f"nothing listens on port {port}"


def test_json(capsys: pytest.CaptureFixture[str]) -> None:
    with held_port("udp") as (port, pid):
        assert main(["listening", "--udp", "--port", str(port), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) == {"sockets", "hidden_owners", "privileged"}
    [sock] = doc["sockets"]
    assert sock["transport"] == "udp"
    assert sock["port"] == port
    assert sock["pid"] == pid
    assert set(sock) == {
        "transport",
        "family",
        "address",
        "port",
        "service",
        "pid",
        "process",
        "user",
    }


@pytest.mark.parametrize("port", ["65536", "nosuchservice", "http://h:99999/", "53/sctp"])
def test_bad_port_is_one_line_exit_2(capsys: pytest.CaptureFixture[str], port: str) -> None:
    assert main(["listening", "--port", port]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert port in err[0]


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a command as another user")
def test_without_root_owners_are_hidden_and_said_so() -> None:
    setpriv = shutil.which("setpriv")
    assert setpriv is not None, "setpriv (util-linux) is part of every Debian system"
    as_nobody = [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable]
    # nobody's own home: the registry cache of root's is not readable to it
    env = {**os.environ, "PYTHONPATH": str(SRC), "HOME": "/nonexistent"}
    readable = subprocess.run(
        [*as_nobody, "-c", "import portkit.client"], env=env, capture_output=True, check=False
    )
    if readable.returncode != 0:
        pytest.skip("this checkout is not readable by user nobody (e.g. under /root)")
    with held_port() as (port, _):
        proc = subprocess.run(
            [*as_nobody, "-m", "portkit", "listening", "--port", str(port)],
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=60,
        )
        table = subprocess.run(
            [*as_nobody, "-m", "portkit", "listening", "--tcp"],
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=60,
        )
    assert proc.returncode == 0, proc.stderr
    assert "hidden from this user" in proc.stdout
    assert table.returncode == 0, table.stderr
    assert "run as root to see their owners" in table.stdout


def test_port_zero_is_a_question_with_an_answer(capsys: pytest.CaptureFixture[str]) -> None:
    # Nothing is ever bound to port 0 (binding 0 asks for any port): "nothing listens".
    assert main(["listening", "--port", "0"]) == 1
    assert capsys.readouterr().out == "nothing listens on port 0\n"


@pytest.mark.parametrize(
    "form",
    ["{port}", "127.0.0.1:{port}", "http://localhost:{port}/", "{port}/tcp", "tcp://h:{port}"],
)
def test_port_accepts_every_endpoint_form(form: str, capsys: pytest.CaptureFixture[str]) -> None:
    with held_port("tcp") as (port, pid):
        assert main(["listening", "--port", form.format(port=port)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"port {port}")
    assert f"pid {pid}" in out


def test_port_by_service_name(capsys: pytest.CaptureFixture[str]) -> None:
    from portkit.client import listening_sockets

    # tcpmux is port 1: nothing listens there on a test machine, and the name is read.
    assert listening_sockets(port=1).sockets == ()
    assert main(["listening", "--port", "tcpmux"]) == 1
    assert capsys.readouterr().out == "nothing listens on port 1\n"


def test_udp_written_in_the_port_selects_udp(capsys: pytest.CaptureFixture[str]) -> None:
    with held_port("udp") as (port, pid):
        assert main(["listening", "--port", f"{port}/udp"]) == 0
        udp = capsys.readouterr().out
        assert main(["listening", "--port", f"{port}/tcp"]) == 1
        tcp = capsys.readouterr().out
        assert main(["listening", "--port", f"udp://127.0.0.1:{port}", "--tcp"]) == 2
        conflict = capsys.readouterr().err
    assert f"pid {pid}" in udp
    assert "udp 127.0.0.1" in udp
    assert tcp == f"nothing listens on port {port}\n"
    assert "names udp, but --tcp was given" in conflict


def test_console_script_output_arrives_whole_through_a_pipe() -> None:
    # `portkit listening` ends without the interpreter's teardown: what it printed must
    # still be flushed, and its exit status kept (1: nothing listens on that port).
    run = [sys.executable, "-m", "portkit", "listening"]
    # Buffered output, as a user's shell gives it (the test runner may set unbuffered).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    env["PYTHONPATH"] = str(SRC)
    held = []
    try:
        for _ in range(300):  # more output than a pipe's buffer holds
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sock.listen()
            held.append(sock)
        listed = subprocess.run([*run, "--tcp", "--json"], capture_output=True, env=env, timeout=60)
        ports = {sock.getsockname()[1] for sock in held}
    finally:
        for sock in held:
            sock.close()
    assert listed.returncode == 0, listed.stderr
    assert ports <= {s["port"] for s in json.loads(listed.stdout)["sockets"]}
    nothing = subprocess.run([*run, "--port", "0"], capture_output=True, env=env, timeout=60)
    assert (nothing.returncode, nothing.stdout) == (1, b"nothing listens on port 0\n")
