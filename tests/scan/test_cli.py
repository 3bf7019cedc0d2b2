"""``portkit scan`` end to end: exit codes, one-line errors, formats, files, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from portkit.cli import main

SRC = str(Path(__file__).resolve().parents[2] / "src")


@pytest.fixture
def listener() -> Iterator[int]:
    server = socket.socket()
    server.bind(("127.0.0.2", 0))
    server.listen(16)
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


@pytest.mark.parametrize(
    ("argv", "quoted"),
    [
        (["127.0.0.1", "-p", "70000"], "70000"),
        (["127.0.0.1", "-p", "5-1"], "5-1"),
        (["127.0.0.1", "-p", "nosuchservice"], "nosuchservice"),
        (["10.0.0.0/33", "-p", "80"], "10.0.0.0/33"),
        ([], "no targets"),
        (["127.0.0.1", "--top", "0"], "--top"),
        (["127.0.0.1", "-iL", "/nonexistent/targets.txt"], "/nonexistent/targets.txt"),
        (["127.0.0.1", "--exclude", "127.0.0.1"], "excluded"),
        (["127.0.0.1", "-p", "80", "--top", "10"], "not allowed with"),
        (["127.0.0.1", "--rate", "0"], "rate"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    argv: list[str], quoted: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["scan", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert quoted in lines[0]


def test_table_output(listener: int, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", "127.0.0.2", "-p", f"{listener},{listener + 1}"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("127.0.0.2\n")
    row = next(line for line in out.splitlines() if line.strip().startswith(str(listener)))
    assert row.split()[1:3] == ["tcp", "open"]
    assert out.splitlines()[-1].startswith("scanned 1 host, 2 ports in ")
    assert out.splitlines()[-1].endswith(": 1 open")


def test_json_to_file_with_target_file_and_exclude(listener: int, tmp_path: Path) -> None:
    targets = tmp_path / "targets.txt"
    targets.write_text("127.0.0.2 127.0.0.3\n127.0.0.4  # not this one\n", encoding="utf-8")
    out = tmp_path / "scan.json"
    argv = ["scan", "-iL", str(targets), "--exclude", "127.0.0.4", "-p", str(listener)]
    assert main([*argv, "-o", "json", "--output", str(out)]) == 0
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert [h["address"] for h in doc["hosts"]] == ["127.0.0.2", "127.0.0.3"]
    states = {h["address"]: h["ports"][0]["state"] for h in doc["hosts"]}
    assert states == {"127.0.0.2": "open", "127.0.0.3": "closed"}


def test_grep_output(listener: int, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", "127.0.0.2", "-p", str(listener), "-o", "grep"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith(f"Host: 127.0.0.2 ()\tPorts: {listener}/open/tcp//")


def test_help_has_examples(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", "--help"]) == 0
    out = capsys.readouterr().out
    assert "examples:" in out
    assert "portkit scan 127.0.0.1 -p-" in out


def _start(argv: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "portkit", "scan", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": SRC},
    )


def test_ctrl_c_keeps_xml_well_formed(listener: int) -> None:
    # A slow scan (rate ceiling), interrupted once its header is out.
    proc = _start(["127.0.0.2", "-p", f"{listener},1-65535", "--rate", "2000", "-o", "xml"])
    assert proc.stdout is not None
    head = proc.stdout.readline()  # the ready signal: the report has begun
    assert head.startswith("<?xml")
    proc.send_signal(signal.SIGINT)
    # Read on through proc.stdout: it may hold more of the header already (communicate
    # would read the pipe underneath it and lose those lines).
    with proc:  # closes the pipes
        rest = proc.stdout.read()
        assert proc.stderr is not None
        err = proc.stderr.read()
        proc.wait(timeout=60)
    assert proc.returncode == 130, err
    root = ET.fromstring(head + rest)
    finished = root.find("runstats/finished")
    assert finished is not None
    assert finished.get("exit") == "error"
    assert "interrupted" in err
    assert len(err.strip().splitlines()) == 1


def test_ctrl_c_reports_what_was_found(listener: int) -> None:
    proc = _start(
        ["127.0.0.2", "-p", f"{listener},{listener + 1}-65535", "--rate", "2000", "-o", "jsonl"]
    )
    assert proc.stdout is not None
    assert json.loads(proc.stdout.readline())["type"] == "scan"
    found = json.loads(proc.stdout.readline())  # streamed as found: the listener
    assert (found["type"], found["port"], found["state"]) == ("port", listener, "open")
    proc.send_signal(signal.SIGINT)
    rest, _err = proc.communicate(timeout=60)
    summary = json.loads(rest.splitlines()[-1])
    assert summary["type"] == "summary"
    assert summary["interrupted"] is True
    assert summary["counts"]["open"] >= 1  # the shared loopback may hold other listeners
    assert proc.returncode == 130


def test_progress_bar_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    from portkit.cli import _scan_run as _run

    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    assert type(_run._progress(100)) is _run._Bar  # silent in pipes, files and CI logs
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert isinstance(_run._progress(100), _run._RichBar)
