"""The command-line frame: help, version, one-line errors and exit codes."""

import subprocess
import sys

import pytest

from portkit.cli import main


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("portkit ")


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_unknown_command_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["no-such-command"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "no-such-command" in err


def test_python_dash_m_runs() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "portkit", "--version"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0
    assert proc.stdout.startswith("portkit ")


def test_top_level_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    from portkit.cli._commands import command_names as _command_names

    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in _command_names():
        assert name in out


def _names() -> list[str]:
    from portkit.cli._commands import command_names as _command_names

    return _command_names()


@pytest.mark.parametrize("name", _names())
def test_every_command_has_help_with_examples(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([name, "--help"]) == 0
    out = capsys.readouterr().out
    assert f"portkit {name}" in out
    assert "example" in out.lower()


@pytest.mark.parametrize("name", _names())
def test_bare_arguments_are_what_argparse_makes_of_the_command_alone(name: str) -> None:
    """A command run alone may skip argparse (``bare_arguments``): only if it gets exactly
    the arguments argparse would have made."""
    from portkit.cli._commands import load as _load
    from portkit.cli._parser import build_parser

    bare = getattr(_load(name), "bare_arguments", None)
    if bare is None:
        return  # this command always goes through argparse
    parser, _ = build_parser(name)
    assert vars(bare()) == vars(parser.parse_args([name]))


def test_the_command_alone_starts_without_argparse() -> None:
    # `portkit listening` alone: the common call, timed against `ss -ltnup`.
    code = (
        "import sys\n"
        "from portkit.cli import main\n"
        "status = main(['listening'])\n"
        "heavy = sorted({'argparse', 're', 'enum', 'gettext', 'locale'} & set(sys.modules))\n"
        "print('loaded:', heavy, file=sys.stderr)\n"
        "raise SystemExit(status)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "PROTO" in proc.stdout
    assert "loaded: []" in proc.stderr
    # With an option, argparse reads it as before.
    assert main(["listening", "--tcp", "--json"]) == 0
