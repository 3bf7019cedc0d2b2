"""What a plain ``portkit scan`` imports: only what the scan it was asked for needs.

A one-port scan is mostly start-up, so the modules it loads are its cost: a connect or
SYN scan without ``--detect`` runs without an event loop (no asyncio, and so no ssl or
concurrent.futures), a report loads only its own format's writer, and a few ports are
named by the registry without looking for a kept table of names. Each case runs
the command in a fresh interpreter against a real listener and reads ``sys.modules``
once the command has finished.
"""

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

SRC = str(Path(__file__).resolve().parents[2] / "src")

# Runs the command line in process, then prints the modules it loaded as the last line.
_WRAPPER = (
    "import json, sys\n"
    "from portkit.cli import main\n"
    "status = main(sys.argv[1:])\n"
    "print(json.dumps(sorted(sys.modules)))\n"
    "sys.exit(status)\n"
)

# Modules that an event loop (asyncio brings ssl, concurrent.futures, logging with it),
# identification, another report format, or looking for a kept table of port names (a
# one-port scan asks the registry) would bring in.
HEAVY = (
    "asyncio",
    "concurrent.futures",
    "ssl",
    "logging",
    "tempfile",
    "hashlib",
    "pathlib",
    "portkit.endpoint",
    "portkit.report._html",
    "portkit.report._xml",
    "portkit.report._json",
    "portkit.report._grep",
    "portkit.scan._identify",
    "jinja2",
)


@pytest.fixture
def listener() -> Iterator[int]:
    server = socket.socket()
    server.bind(("127.0.0.2", 0))
    server.listen(4)
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


def _command(*argv: str) -> list[str]:
    return [sys.executable, "-c", _WRAPPER, "scan", *argv]


_ENV = {**os.environ, "PYTHONPATH": SRC}


def _scan(*argv: str) -> tuple[list[str], set[str]]:
    """Run ``portkit scan ARGV`` in a fresh interpreter: its report lines, its modules."""
    done = subprocess.run(_command(*argv), capture_output=True, text=True, timeout=60, env=_ENV)
    assert done.returncode == 0, done.stderr
    *lines, modules = done.stdout.splitlines()
    return lines, set(json.loads(modules))


def _open_row(lines: list[str], port: int) -> list[str]:
    return next(line.split() for line in lines if line.strip().startswith(f"{port} "))


def test_a_connect_scan_loads_no_event_loop_and_no_other_report(listener: int) -> None:
    lines, modules = _scan("127.0.0.2", "-p", str(listener), "-o", "table")
    assert _open_row(lines, listener)[1:3] == ["tcp", "open"]  # it did scan
    assert "portkit.report._table" in modules
    assert sorted(modules.intersection(HEAVY)) == []


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (raw sockets for --syn)")
def test_a_syn_scan_loads_no_event_loop(listener: int) -> None:
    lines, modules = _scan("127.0.0.2", "-p", str(listener), "--syn")
    assert _open_row(lines, listener)[1:3] == ["tcp", "open"]
    assert "portkit.scan._syn" in modules
    # hashlib is the SYN engine's own: it keys its sequence numbers with BLAKE2.
    assert sorted(modules.intersection(HEAVY) - {"hashlib"}) == []


def test_a_report_loads_its_own_writer_only(listener: int) -> None:
    lines, modules = _scan("127.0.0.2", "-p", str(listener), "-o", "xml")
    assert any(f'portid="{listener}"' in line for line in lines)
    assert "portkit.report._xml" in modules
    assert sorted(modules.intersection(HEAVY) - {"portkit.report._xml"}) == []


def test_what_needs_the_event_loop_still_gets_it(listener: int) -> None:
    # --host-timeout is kept by the event loop's timer: the scan runs under asyncio.
    lines, modules = _scan("127.0.0.2", "-p", str(listener), "--host-timeout", "30s")
    assert _open_row(lines, listener)[1:3] == ["tcp", "open"]
    assert "asyncio" in modules


def test_ctrl_c_without_an_event_loop_reports_what_was_found(listener: int) -> None:
    # One process (--processes 1) and a slow rate: a long scan that runs without asyncio,
    # interrupted once the listener is reported.
    argv = ["127.0.0.2", "-p", f"{listener},{listener + 1}-65535", "--rate", "2000"]
    proc = subprocess.Popen(
        _command(*argv, "--processes", "1", "-o", "jsonl"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_ENV,
    )
    assert proc.stdout is not None
    assert json.loads(proc.stdout.readline())["type"] == "scan"
    found = json.loads(proc.stdout.readline())  # streamed as found: the listener
    assert (found["port"], found["state"]) == (listener, "open")
    proc.send_signal(signal.SIGINT)
    rest, err = proc.communicate(timeout=60)
    *lines, modules = rest.splitlines()
    summary = json.loads(lines[-1])
    assert (summary["type"], summary["interrupted"]) == ("summary", True)
    assert err.strip() == "portkit: interrupted; the results above are partial"
    assert proc.returncode == 130
    assert "asyncio" not in json.loads(modules)


# Runs the console script's entry point with an exit handler that says when the
# interpreter's teardown ran.
_CONSOLE = (
    "import atexit, sys\n"
    "atexit.register(print, 'teardown ran', file=sys.stderr)\n"
    "from portkit.cli import console_main\n"
    "console_main()\n"
)


def _console(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _CONSOLE, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env=_ENV,
    )


def test_a_scan_ends_without_the_teardown_with_its_reports_whole(
    listener: int, tmp_path: Path
) -> None:
    saved = tmp_path / "scan.xml"
    done = _console("scan", "127.0.0.2", "-p", str(listener), "-oX", str(saved))
    assert done.returncode == 0, done.stderr
    assert "teardown ran" not in done.stderr
    assert done.stdout.splitlines()[-1].endswith(": 1 open")  # stdout flushed whole
    port = ET.parse(saved).getroot().find("host/ports/port")  # the file closed whole
    assert port is not None
    assert port.get("portid") == str(listener)
    # The probe sees a teardown where there is one: a command that keeps it.
    assert "teardown ran" in _console("lookup", "443").stderr


def test_a_cluster_scan_keeps_the_teardown() -> None:
    from portkit.cli._parser import build_parser
    from portkit.cli.cmd_scan import quick_exit

    parser, _loaded = build_parser("scan")
    assert quick_exit(parser.parse_args(["scan", "127.0.0.2", "-p", "22"]))
    for option in (["--workers", "2"], ["--cluster", "tcp://127.0.0.1:8786"]):
        assert not quick_exit(parser.parse_args(["scan", "127.0.0.2", *option]))
