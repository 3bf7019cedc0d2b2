"""``portkit connect --starttls`` against Debian's own Dovecot and Postfix in the lab."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests._lab import Lab

SRC = Path(__file__).resolve().parents[2] / "src"


def _connect(lab: Lab, *argv: str, stdin: str) -> tuple[int, str, str]:
    proc = lab.run_in(
        ["env", f"PYTHONPATH={SRC}", sys.executable, "-m", "portkit", "connect", *argv],
        input=stdin,
    )
    return proc.returncode, proc.stdout, proc.stderr


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for the lab's network namespace")
@pytest.mark.parametrize(
    ("protocol", "port", "stdin", "last_line", "go_ahead"),
    [
        ("imap", 143, "a1 CAPABILITY\na2 LOGOUT\n", "a2 OK Logout completed.", "pk1 OK"),
        ("pop3", 110, "CAPA\nQUIT\n", "+OK Logging out", "+OK"),
        ("smtp", 587, "EHLO client.example\nQUIT\n", "221 2.0.0 Bye", "220 2.0.0 Ready"),
    ],
)
def test_starttls_against_the_lab(
    lab: Lab, protocol: str, port: int, stdin: str, last_line: str, go_ahead: str
) -> None:
    if port not in lab.ports():
        pytest.skip(f"the lab runs nothing on {port} (needs lab/up.sh --extra)")
    status, out, err = _connect(
        lab, "--starttls", protocol, "--crlf", "--insecure", f"{lab.host}:{port}", stdin=stdin
    )
    assert status == 0, err
    lines = out.splitlines()
    assert lines[-1].startswith(last_line), out
    assert f"{protocol} starttls: the server said '{go_ahead}" in err
    assert "TLSv1.3" in err
    # Over TLS the server no longer offers the upgrade: proof the session is encrypted.
    assert "STARTTLS" not in out
    assert "STLS" not in out


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for the lab's network namespace")
def test_starttls_ftp_refused_by_a_server_without_tls(lab: Lab) -> None:
    # The lab's vsftpd has no certificate: it answers AUTH TLS with an error.
    status, out, err = _connect(lab, "-q", "--starttls", "ftp", f"{lab.host}:21", stdin="")
    assert (status, out) == (1, "")
    assert err.startswith("portkit: ftp starttls: the server answered the upgrade with '5")
    assert err.count("\n") == 1
