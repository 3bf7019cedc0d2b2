"""``portkit free-port``: one port a line (or JSON), bindable, one-line errors."""

from __future__ import annotations

import json
import socket

import pytest

from portkit.cli import main


def test_prints_bindable_ports(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["free-port", "--near", "20000", "--count", "3"]) == 0
    ports = [int(line) for line in capsys.readouterr().out.split()]
    assert len(set(ports)) == 3
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("0.0.0.0", port))
            sock.listen()


def test_json_udp(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["free-port", "--transport", "udp", "--count", "2", "--json"]) == 0
    ports = json.loads(capsys.readouterr().out)
    assert len(ports) == 2
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("0.0.0.0", port))


@pytest.mark.parametrize(
    ("argv", "quoted"),
    [
        (["--near", "65536"], "port must be 0-65535, not 65536"),
        (["--count", "0"], "0"),
        (["--transport", "sctp"], "sctp"),
        (["--near", "http"], "http"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], quoted: str
) -> None:
    assert main(["free-port", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert quoted in err[0]
