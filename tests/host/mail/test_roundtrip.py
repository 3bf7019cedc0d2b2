"""Real clients end to end: smtplib in, poplib and imaplib out, the bytes identical."""

from __future__ import annotations

import imaplib
import poplib
import smtplib

from tests.host.mail.conftest import PASSWORD, MailHost

MESSAGE = (
    b"From: Carol <carol@elsewhere.test>\r\n"
    b"To: Alice <alice@example.test>\r\n"
    b"Subject: round trip\r\n"
    b"Message-ID: <rt-1@elsewhere.test>\r\n"
    b"\r\n"
    b"Hello Alice.\r\n"
    b".a line starting with a dot\r\n"
    b"\r\n"
    b"Bye.\r\n"
)


def send(host: MailHost, message: bytes = MESSAGE, rcpt: str = "alice@example.test") -> None:
    with smtplib.SMTP("127.0.0.1", host.ports["smtp"], timeout=30) as client:
        client.sendmail("carol@elsewhere.test", [rcpt], message)


def test_smtp_to_pop3_bytes_identical(mail_host: MailHost) -> None:
    send(mail_host)
    client = poplib.POP3("127.0.0.1", mail_host.ports["pop3"], timeout=30)
    try:
        client.user("alice")
        client.pass_(PASSWORD)
        count, _size = client.stat()
        assert count == 1
        _resp, lines, _octets = client.retr(1)
        fetched = b"\r\n".join(lines) + b"\r\n"
    finally:
        client.quit()
    assert fetched.startswith(b"Return-Path: <carol@elsewhere.test>\r\nReceived: from ")
    assert fetched.endswith(MESSAGE)


def test_smtp_to_imap_bytes_identical(mail_host: MailHost) -> None:
    send(mail_host)
    client = imaplib.IMAP4("127.0.0.1", mail_host.ports["imap"], timeout=30)
    try:
        client.login("alice", PASSWORD)
        typ, data = client.select("INBOX")
        assert (typ, data) == ("OK", [b"1"])
        typ, fetched = client.fetch("1", "(BODY.PEEK[] FLAGS)")
        assert typ == "OK"
        part = fetched[0]
        assert isinstance(part, tuple)
        assert part[1].endswith(MESSAGE)
        assert b"\\Seen" not in part[0]
        typ, fetched = client.fetch("1", "(BODY[])")
        typ, flags = client.fetch("1", "(FLAGS)")
        assert b"\\Seen" in flags[0]  # type: ignore[operator]
    finally:
        client.logout()
