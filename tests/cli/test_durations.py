"""Every duration option is in seconds; scan's --timeout refuses what looks like milliseconds."""

from __future__ import annotations

import pytest

from portkit.cli import full_parser, main


@pytest.mark.parametrize(
    ("argv", "value"),
    [
        # Not given: None, so that a -T template may choose; without one the scan waits 1 s.
        (["scan", "127.0.0.1"], None),
        (["scan", "127.0.0.1", "--timeout", "0.25"], 0.25),
        (["scan", "127.0.0.1", "--timeout", "60"], 60.0),
        (["resolve", "h:22", "--timeout", "0.5"], 0.5),
    ],
)
def test_timeouts_are_seconds(argv: list[str], value: float | None) -> None:
    assert full_parser().parse_args(argv).timeout == value


@pytest.mark.parametrize(
    ("timeout", "said"),
    [
        ("250", "is in seconds, at most 60, not '250'; for 250 milliseconds write 0.25"),
        ("1000", "is in seconds, at most 60, not '1000'; for 1000 milliseconds write 1"),
        ("0", "must be more than 0 seconds, not '0'"),
        ("-1", "must be more than 0 seconds, not '-1'"),
        ("nan", "must be more than 0 seconds, not 'nan'"),
        ("soon", "expected seconds, such as 5 or 0.25, not 'soon'"),
    ],
)
def test_scan_timeout_bad_values_are_one_line_exit_2(
    timeout: str, said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # --timeout=VALUE: since scan accepts nmap's -6, argparse reads a bare -1 as an option.
    assert main(["scan", "127.0.0.1", "-p", "1", f"--timeout={timeout}"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1, captured.err
    assert "argument --timeout: " + said in captured.err
