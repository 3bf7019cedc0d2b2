"""fetchmail (Debian's batch mail retriever) against the pop3 and imap kinds, TLS included."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.host.mail.conftest import PASSWORD, MailHost
from tests.host.mail.test_roundtrip import MESSAGE, send

pytestmark = pytest.mark.skipif(
    shutil.which("fetchmail") is None, reason="needs fetchmail (Debian package)"
)


@pytest.mark.parametrize(
    ("proto", "port", "tls"),
    [
        ("POP3", "pop3", "sslproto ''"),
        ("POP3", "pop3", "sslproto TLS1.2+"),
        ("IMAP", "imaps", "ssl"),
    ],
)
def test_fetchmail_retrieves_and_deletes(
    mail_host: MailHost, tmp_path: Path, proto: str, port: str, tls: str
) -> None:
    send(mail_host)
    send(mail_host, MESSAGE.replace(b"round trip", b"second"))
    out = tmp_path / "delivered"
    out.mkdir()
    rc = tmp_path / "fetchmailrc"
    rc.write_text(
        "set no bouncemail\n"
        f"poll 127.0.0.1 with proto {proto} port {mail_host.ports[port]}\n"
        f'  user "alice" there with password "{PASSWORD}" is "root" here\n'
        f"  {tls} sslcertck sslcertfile {mail_host.cert} sslcommonname localhost\n"
        f"  mda \"/bin/sh -c 'cat > {out}/$$'\"\n"
    )
    rc.chmod(0o600)
    result = subprocess.run(
        [
            "fetchmail",
            "--fetchmailrc",
            str(rc),
            "--nosyslog",
            "--nodetach",
            "--pidfile",
            str(tmp_path / "pid"),
            "-v",
        ],
        env=dict(os.environ, HOME=str(tmp_path), FETCHMAILHOME=str(tmp_path)),
        capture_output=True,
        timeout=120,
        check=False,
    )
    log = result.stdout.decode() + result.stderr.decode()
    assert result.returncode == 0, log
    assert ("POP3> STLS" in log) == (tls == "sslproto TLS1.2+"), log
    delivered = sorted(p.read_bytes() for p in out.iterdir())
    assert len(delivered) == 2, log
    assert any(d.endswith(b"Bye.\r\n") or d.endswith(b"Bye.\n") for d in delivered)
    assert all(b"Subject: " in d for d in delivered)
    # fetchmail deletes what it delivered (no "keep"): the maildrop is empty now
    assert mail_host.store.maildir("alice").scan() == []
