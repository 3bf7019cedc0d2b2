"""``portkit scan`` with nmap's flags and files, against real listeners on loopback."""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from portkit.cli import full_parser, main
from portkit.scan._top import top_ports

# An address of our own in 127/8, so that ports bound elsewhere on loopback do not matter.
HOST = "127.0.0.93"


@pytest.fixture
def listener() -> Iterator[int]:
    server = socket.socket()
    server.bind((HOST, 0))
    server.listen(16)
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


def _states(xml_text: str) -> dict[int, str]:
    root = ET.fromstring(xml_text)
    return {
        int(port.attrib["portid"]): port.find("state").attrib["state"]  # type: ignore[union-attr]
        for port in root.iter("port")
    }


def test_oA_writes_nmaps_three_files_and_the_table_still_shows(
    listener: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = tmp_path / "base"
    argv = ["scan", HOST, "-sT", "-Pn", "-n", "-p", f"{listener},{listener + 1}", "-oA", str(base)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"{listener}" in out
    assert "open" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base.gnmap", "base.nmap", "base.xml"]
    states = _states((tmp_path / "base.xml").read_text(encoding="utf-8"))
    assert states == {listener: "open", listener + 1: "closed"}
    gnmap = (tmp_path / "base.gnmap").read_text(encoding="utf-8")
    assert f"Host: {HOST} ()\tPorts: {listener}/open/tcp//" in gnmap
    assert (tmp_path / "base.nmap").read_text(encoding="utf-8") in out


def test_oX_dash_writes_xml_alone_on_stdout(
    listener: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["scan", HOST, "-p", str(listener), "-oX", "-"]) == 0
    out = capsys.readouterr().out
    assert _states(out) == {listener: "open"}  # the whole of stdout is one XML document
    assert "scanned 1 host" not in out  # and no table inside it (that would still parse)


def test_file_names_and_port_states_match_nmaps(listener: int, tmp_path: Path) -> None:
    if shutil.which("nmap") is None:
        pytest.skip("needs nmap to compare with")
    ports = f"{listener},{listener + 1}"
    flags = ["-sT", "-Pn", "-n", "-p", ports]
    (tmp_path / "nmap").mkdir()
    (tmp_path / "ours").mkdir()
    nmap = ["nmap", *flags, "-oA", str(tmp_path / "nmap" / "b"), HOST]
    subprocess.run(nmap, check=True, capture_output=True, timeout=120)
    assert main(["scan", HOST, *flags, "-oA", str(tmp_path / "ours" / "b"), "-q"]) == 0
    names = {d: sorted(p.name for p in (tmp_path / d).iterdir()) for d in ("nmap", "ours")}
    assert names["ours"] == names["nmap"]
    read = {d: (tmp_path / d / "b.xml").read_text(encoding="utf-8") for d in ("nmap", "ours")}
    assert _states(read["ours"]) == _states(read["nmap"])


@pytest.mark.parametrize(
    ("argv", "quoted"),
    [
        (["-sX"], "-sX"),
        (["-oZ", "x"], "'Z'"),
        (["-T9"], "9"),
        (["--host-timeout", "5x"], "'5x'"),
        (["--min-rate", "0"], "--min-rate"),
        (["-oX", "-", "-oG", "-"], "stdout"),
        (["-oA", ""], "-oA"),
        (["-o", "json", "-oX", "-"], "stdout"),
        (["-oX", "same", "-oG", "same"], "'same'"),
        (["-oX", "/nonexistent/dir/x.xml"], "/nonexistent/dir/x.xml"),
    ],
)
def test_bad_nmap_flags_are_one_line_exit_2(
    argv: list[str], quoted: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["scan", HOST, "-p", "1", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert quoted in lines[0]


def test_unknown_flag_points_at_scan_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", HOST, "-sX"]) == 2
    err = capsys.readouterr().err
    assert "did you mean -s" in err
    assert "(see 'portkit scan --help')" in err


def test_misspelt_nmap_output_names_the_real_ones(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", HOST, "-oZ", "x"]) == 2
    err = capsys.readouterr().err
    assert "did you mean -oN, -oX, -oG or -oA?" in err
    assert "(see 'portkit scan --help')" in err


def test_open_lists_only_open_ports_and_counts_the_rest(
    listener: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["scan", HOST, "-p", f"{listener},{listener + 1}", "--open"]) == 0
    out = capsys.readouterr().out
    assert f"  {listener + 1} " not in out
    assert f"  {listener} " in out
    assert "not shown: 1 closed tcp ports" in out


def test_reason_adds_the_reason_column(listener: int, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", HOST, "-p", f"{listener},{listener + 1}", "--reason"]) == 0
    out = capsys.readouterr().out
    assert "REASON" in out.splitlines()[1]
    assert "syn-ack" in out
    assert "conn-refused" in out


def test_verbose_announces_open_ports_and_quiet_says_nothing(
    listener: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["scan", HOST, "-p", str(listener), "-v"]) == 0
    assert f"open port {listener}/tcp on {HOST}" in capsys.readouterr().err
    assert main(["scan", HOST, "-p", str(listener), "-q"]) == 0
    assert capsys.readouterr().err == ""


def test_sU_with_sT_scans_both_transports(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", HOST, "-sU", "-sT", "-p", "9", "-o", "json", "--timeout", "0.05"]) == 0
    scan = json.loads(capsys.readouterr().out)["scan"]
    assert (scan["tcp_ports"], scan["udp_ports"]) == ("9", "9")


def test_top_ports_is_top(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", HOST, "--top-ports", "100", "-o", "json", "-T5"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert sum(doc["hosts"][0]["counts"].values()) == 100
    assert "-T5" in doc["scan"]["args"]


def test_host_timeout_stops_the_scan_and_reports_partial_results(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # 65,535 probes at 200 per second would take minutes; the deadline ends it.
    argv = ["scan", HOST, "-p-", "--max-rate", "200", "--host-timeout", "300ms", "-o", "json"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["summary"]["interrupted"] is True
    assert "--host-timeout reached" in captured.err


def test_default_list_has_development_ports() -> None:
    default = set(top_ports(1000))
    for port in (3000, 4200, 5000, 5173, 8000, 8008, 8080, 8081, 8082, 8443, 8888, 9000):
        assert port in default, port
    for port in (9090, 9200, 27017, 7007, 1313):
        assert port in default, port
    assert len(top_ports(1000)) == len(default)  # no port twice


def test_service_column_says_what_people_call_the_port(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Closed ports are listed (few of them) with the name the report gives them.
    assert main(["scan", HOST, "-p", "8000,8081,8082", "-o", "json"]) == 0
    ports = json.loads(capsys.readouterr().out)["hosts"][0]["ports"]
    names = {p["port"]: (p["expected"], p["expected_iana"]) for p in ports}
    assert names == {
        8000: ("http-alt", "irdmi"),
        8081: ("http-alt", "sunproxyadmin"),
        8082: ("http-alt", "us-cli"),
    }
    assert main(["scan", HOST, "-p", "8000"]) == 0
    row = capsys.readouterr().out.splitlines()[2].split()
    assert row == ["8000", "tcp", "closed", "http-alt"]


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("no commands")


def test_every_command_has_verbose_and_quiet() -> None:
    for name, parser in _subparsers(full_parser()).items():
        flags = {o for a in parser._actions for o in a.option_strings}
        assert {"-v", "--verbose", "-q", "--quiet"} <= flags, name


def test_quiet_and_verbose_parse_in_a_command_that_logs_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["lookup", "443", "-q"]) == 0
    assert main(["lookup", "443", "-vv"]) == 0
    assert "https" in capsys.readouterr().out
