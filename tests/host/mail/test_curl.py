"""curl as the client: smtp://, pop3://, imap:// with and without TLS (plain, --ssl-reqd, implicit)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.host.mail.conftest import PASSWORD, MailHost, start_host
from tests.host.mail.test_roundtrip import MESSAGE

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl (Debian package)")


def curl(host: MailHost, *args: str) -> bytes:
    """Run curl against loopback only; the test CA is trusted explicitly, no -k needed."""
    result = subprocess.run(
        ["curl", "--silent", "--show-error", "--max-time", "60", "--cacert", str(host.cert), *args],
        capture_output=True,
        timeout=90,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout


def curl_send(host: MailHost, tmp_path: Path, url: str, *args: str) -> None:
    """Send MESSAGE from carol@elsewhere.test to alice@example.test with curl."""
    message = tmp_path / "message.eml"
    message.write_bytes(MESSAGE)
    curl(
        host,
        url,
        *args,
        "--mail-from",
        "carol@elsewhere.test",
        "--mail-rcpt",
        "alice@example.test",
        "--upload-file",
        str(message),
    )


@pytest.mark.parametrize(
    ("scheme", "port", "tls_args"),
    [
        ("smtp", "smtp", []),
        ("smtp", "smtp", ["--ssl-reqd"]),
        ("smtps", "smtps", []),
    ],
)
def test_curl_sends(
    mail_host: MailHost, tmp_path: Path, scheme: str, port: str, tls_args: list[str]
) -> None:
    curl_send(mail_host, tmp_path, f"{scheme}://localhost:{mail_host.ports[port]}", *tls_args)
    [entry] = mail_host.store.maildir("alice").scan()
    assert entry.path.read_bytes().endswith(MESSAGE)


@pytest.mark.parametrize(
    ("scheme", "port", "tls_args"),
    [
        ("pop3", "pop3", []),
        ("pop3", "pop3", ["--ssl-reqd"]),
        ("pop3s", "pop3s", []),
        ("imap", "imap", []),
        ("imap", "imap", ["--ssl-reqd"]),
        ("imaps", "imaps", []),
    ],
)
def test_curl_retrieves_identical_bytes(
    mail_host: MailHost, tmp_path: Path, scheme: str, port: str, tls_args: list[str]
) -> None:
    curl_send(mail_host, tmp_path, f"smtp://localhost:{mail_host.ports['smtp']}")
    stored = mail_host.store.maildir("alice").scan()[0].path.read_bytes()
    path = "/1" if scheme.startswith("pop3") else "/INBOX;UID=1"
    fetched = curl(
        mail_host,
        f"{scheme}://localhost:{mail_host.ports[port]}{path}",
        *tls_args,
        "--user",
        f"alice:{PASSWORD}",
    )
    assert fetched == stored
    assert fetched.endswith(MESSAGE)


def test_curl_with_insecure_flag_against_self_signed(mail_host: MailHost) -> None:
    mail_host.store.maildir("alice").deliver(MESSAGE)
    listing = subprocess.run(
        [
            "curl",
            "--silent",
            "--show-error",
            "-k",
            "--max-time",
            "60",
            f"pop3s://localhost:{mail_host.ports['pop3s']}/",
            "--user",
            f"alice:{PASSWORD}",
        ],
        capture_output=True,
        timeout=90,
        check=False,
    )
    assert listing.returncode == 0, listing.stderr.decode()
    assert listing.stdout == b"1 %d\r\n" % len(MESSAGE)  # the LIST of one message


def test_without_cert_a_self_signed_one_is_served(tmp_path: Path) -> None:
    host, stop = start_host(tmp_path, cert=None, key=None)
    try:
        url = f"pop3s://localhost:{host.ports['pop3s']}/"
        base = ["curl", "--silent", "--max-time", "60", url, "--user", f"alice:{PASSWORD}"]
        strict = subprocess.run(base, capture_output=True, timeout=90, check=False)
        assert strict.returncode == 60  # curl: peer certificate cannot be authenticated
        insecure = subprocess.run([*base, "-k"], capture_output=True, timeout=90, check=False)
        assert insecure.returncode == 0, insecure.stderr.decode()
    finally:
        stop()
