"""``portkit lookup`` as a user runs it."""

from __future__ import annotations

import json

import pytest

from portkit.cli import main


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("query", "fragments"),
    [
        ("443", ("https", "Secure web")),
        ("6010", ("6000-6063", "x11")),  # inside the X11 range
        ("3000", ("Node/React dev servers",)),  # the development convention, explained
    ],
)
def test_port_lookup_names_the_service(
    query: str, fragments: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(["lookup", query], capsys)
    assert code == 0
    for fragment in fragments:
        assert fragment in out


def test_imap_lists_143_220_993(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["lookup", "imap"], capsys)
    assert code == 0
    for port, name in (("143", "imap"), ("220", "imap3"), ("993", "imaps")):
        assert any(line.split()[:1] == [port] and name in line for line in out.splitlines()), port


def test_json_is_stable(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["lookup", "53/udp", "--json"], capsys)
    assert code == 0
    (answer,) = json.loads(out)
    assert answer["kind"] == "port"
    (match,) = answer["matches"]
    assert set(match) == {
        "name",
        "port",
        "port_end",
        "transport",
        "aliases",
        "description",
        "plain",
        "common_use",
    }
    assert (match["name"], match["port"], match["transport"]) == ("domain", 53, "udp")
    assert "dns" in match["aliases"]


def test_search(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["lookup", "--search", "mail retrieval", "-t", "tcp"], capsys)
    assert code == 0
    assert "pop3" in out
    assert "imap" in out


def test_unregistered_port_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["lookup", "4"], capsys)
    assert code == 1
    assert "no registered service" in err


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["lookup", "70000"], "port must be 0-65535, not 70000"),
        (["lookup", "5-1"], "low to high"),
        (["lookup", "nosuchservice"], "unknown service name 'nosuchservice'"),
        (["lookup", "80/quic"], "transport must be one of"),
        (["lookup", "a b"], "not a port"),
        (["lookup"], "give a port"),
        (["lookup", "--transport", "quic", "80"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    args: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(args, capsys)
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert fragment in err
    assert "Traceback" not in err


@pytest.mark.parametrize("columns", [60, 100])
def test_help_is_wrapped_to_the_terminal_width_as_argparse_does(
    columns: int, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import argparse

    monkeypatch.setenv("COLUMNS", str(columns))
    assert main(["lookup", "--help"]) == 0
    ours = capsys.readouterr().out
    # argparse's own formatter, which asks shutil for the width, on the same arguments
    from portkit.cli import cmd_lookup

    reference = argparse.ArgumentParser(
        prog="portkit lookup",
        description=cmd_lookup.SUMMARY,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cmd_lookup.configure(reference)
    from portkit.cli._args import add_verbosity

    add_verbosity(reference)  # every command's -v/-q, added as the command line adds it
    assert ours == reference.format_help()
