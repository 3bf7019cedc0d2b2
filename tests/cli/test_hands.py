"""The command line as people's hands expect it: suggestions, completion, mail tools."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from portkit.cli import main

SRC = Path(__file__).resolve().parents[2] / "src"
ENV = {**os.environ, "PYTHONPATH": str(SRC)}


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_misspelt_command_suggests_the_nearest(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["lookpu", "443"], capsys)
    assert (code, out) == (2, "")
    assert (
        err == "portkit: unknown command 'lookpu'; did you mean 'lookup'? (see 'portkit --help')\n"
    )


def test_unrelated_word_gets_no_suggestion(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["zzzzzz"], capsys)
    assert code == 2
    assert err == "portkit: unknown command 'zzzzzz' (see 'portkit --help')\n"


def test_misspelt_option_suggests_and_points_at_the_command_help(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run(["lookup", "443", "--jsno"], capsys)
    assert code == 2
    assert err.count("\n") == 1
    assert "unrecognized arguments: --jsno; did you mean --json?" in err
    assert "(see 'portkit lookup --help')" in err


def test_a_flag_given_a_value_says_what_it_takes(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["scan", "127.0.0.1", "--detect=bogus"], capsys)
    assert code == 2
    assert err.count("\n") == 1
    assert "--detect takes no value or one of: light, normal, all" in err
    code, _, err = run(["scan", "127.0.0.1", "--open=yes"], capsys)
    assert code == 2
    assert "--open takes no value (see 'portkit scan --help')" in err


def _script(shell: str, capsys: pytest.CaptureFixture[str]) -> str:
    code, out, err = run(["completion", shell], capsys)
    assert code == 0, err
    return out


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_script_parses_in_its_shell(
    shell: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    binary = shutil.which(shell)
    if binary is None:
        pytest.skip(f"needs {shell} to check the script's syntax")
    script = tmp_path / f"portkit.{shell}"
    script.write_text(_script(shell, capsys), encoding="utf-8")
    flag = "--no-execute" if shell == "fish" else "-n"
    proc = subprocess.run(
        [binary, flag, str(script)], capture_output=True, text=True, check=False, timeout=30
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""


def test_bash_completion_completes_commands_and_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Load the script into a real bash and ask it what TAB offers, as a user's shell would.
    script = tmp_path / "portkit.bash"
    script.write_text(_script("bash", capsys), encoding="utf-8")
    probe = (
        f"source {script}\n"
        'complete_for() { COMP_WORDS=("$@"); COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ));'
        ' COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}; COMPREPLY=();'
        ' _shtab_portkit; printf "%s\\n" "${COMPREPLY[@]}"; }\n'
        "complete_for portkit loo; echo ---; complete_for portkit connect --cr; echo ---;"
        " complete_for portkit completion ''\n"
    )
    proc = subprocess.run(
        ["bash", "-c", probe], capture_output=True, text=True, check=False, timeout=30
    )
    first, second, third = proc.stdout.split("---\n")
    assert first.split() == ["lookup"]
    assert "--crlf" in second.split()
    assert sorted(third.split()) == ["bash", "fish", "zsh"]


def test_completion_needs_a_known_shell(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["completion", "powershell"], capsys)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1
    assert "'powershell'" in err


def _portkit(*argv: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "portkit", *argv],
        input=stdin,
        capture_output=True,
        text=True,
        env=ENV,
        check=False,
        timeout=60,
    )


def test_mail_hash_password_hashes_stdin_and_verifies() -> None:
    from portkit.host.apps.mail._auth import verify_password

    proc = _portkit("mail", "hash-password", stdin="wonderland\n")
    assert proc.returncode == 0, proc.stderr
    encoded = proc.stdout.strip()
    assert encoded.startswith("scrypt$")
    assert verify_password("wonderland", encoded)
    assert not verify_password("wonderland\n", encoded)


def test_mail_hash_password_help_exits_0() -> None:
    proc = _portkit("mail", "hash-password", "--help")
    assert proc.returncode == 0
    assert "usage: portkit mail hash-password" in proc.stdout
    assert "example" in proc.stdout


@pytest.mark.parametrize(
    ("argv", "stdin", "quoted"),
    [
        (["mail"], "", "hash-password"),
        (["mail", "hash-pass"], "", "'hash-pass'"),
        (["mail", "hash-password"], "\n", "empty password"),
    ],
)
def test_mail_bad_input_is_one_line_exit_2(argv: list[str], stdin: str, quoted: str) -> None:
    proc = _portkit(*argv, stdin=stdin)
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr.count("\n") == 1
    assert quoted in proc.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["lookup", "70000"],
        ["resolve", "h:70000"],
        ["resolve", "http://h:70000/"],
        ["listening", "--port", "70000"],
        ["free-port", "--near", "70000"],
        ["connect", "127.0.0.1:70000"],
        ["connect", "127.0.0.1", "70000"],
    ],
)
def test_one_wording_for_port_ranges(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(argv, capsys)
    assert (code, out) == (2, "")
    assert err.startswith("portkit: port must be 0-65535, not 70000")
    assert err.count("\n") == 1
