"""The smtp kind with smtplib and raw sockets: policy, limits, TLS, AUTH, faults."""

from __future__ import annotations

import smtplib
import socket
from pathlib import Path

import pytest

from tests.host.mail.conftest import PASSWORD, MailHost, start_host

SMALL = b"From: a@elsewhere.test\r\nTo: alice@example.test\r\nSubject: hi\r\n\r\nhello\r\n"


def count(host: MailHost, user: str = "alice") -> int:
    return len(host.store.maildir(user).scan())


def smtp(host: MailHost, which: str = "smtp") -> smtplib.SMTP:
    return smtplib.SMTP("127.0.0.1", host.ports[which], timeout=30)


def test_delivers_to_local_users_once_each(mail_host: MailHost) -> None:
    with smtp(mail_host) as client:
        refused = client.sendmail(
            "a@elsewhere.test", ["alice@example.test", "BOB@localhost", "alice@localhost"], SMALL
        )
    assert refused == {}
    assert count(mail_host, "alice") == 1  # two addresses, one user: one copy
    assert count(mail_host, "bob") == 1


def test_relaying_refused_and_nothing_stored(mail_host: MailHost) -> None:
    with smtp(mail_host) as client:
        client.ehlo()
        client.mail("a@elsewhere.test")
        code, reply = client.rcpt("victim@gmail.example")
        assert code == 550
        assert b"5.7.1 relaying denied" in reply
        code, reply = client.rcpt("nobody@example.test")
        assert code == 550
        assert b"5.1.1" in reply
    assert not any(mail_host.root.glob("*/new/*"))


def test_size_announced_and_oversized_gets_552_nothing_stored(tmp_path: Path) -> None:
    host, stop = start_host(tmp_path, max_message_size=2000)
    try:
        with smtp(host) as client:
            client.ehlo()
            assert client.esmtp_features["size"] == "2000"
            # a client that does not declare SIZE is stopped at the end of DATA
            client.mail("a@elsewhere.test")
            client.rcpt("alice@example.test")
            code, _ = client.data(SMALL + (b"x" * 70 + b"\r\n") * 50)
            assert code == 552
            # the same session still works for a message within the limit
            client.sendmail("a@elsewhere.test", ["alice@example.test"], SMALL)
        assert count(host) == 1
        assert all(
            b"x" * 100 not in e.path.read_bytes() for e in host.store.maildir("alice").scan()
        )
        # MAIL FROM with a SIZE over the limit is refused before DATA (RFC 1870)
        with smtp(host) as client:
            client.ehlo()
            code, _ = client.mail("a@elsewhere.test", ["SIZE=999999"])
            assert code == 552
    finally:
        stop()


def test_too_many_recipients_get_452(tmp_path: Path) -> None:
    host, stop = start_host(tmp_path, max_recipients=2)
    try:
        with smtp(host) as client:
            client.ehlo()
            client.mail("a@elsewhere.test")
            assert client.rcpt("alice@example.test")[0] == 250
            assert client.rcpt("bob@example.test")[0] == 250
            code, reply = client.rcpt("alice@localhost")
            assert (code, reply[:5]) == (452, b"4.5.3")
    finally:
        stop()


def test_overlong_line_refused_nothing_stored(mail_host: MailHost) -> None:
    with smtp(mail_host) as client, pytest.raises(smtplib.SMTPDataError) as info:
        client.sendmail("a@elsewhere.test", ["alice@example.test"], SMALL + b"y" * 5000 + b"\r\n")
    assert info.value.smtp_code == 500
    assert count(mail_host) == 0


def _raw_session(host: MailHost) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", host.ports["smtp"]), timeout=30)
    file = sock.makefile("rb")
    assert file.readline().startswith(b"220")
    for command in (
        b"EHLO client.test",
        b"MAIL FROM:<a@elsewhere.test>",
        b"RCPT TO:<alice@example.test>",
        b"DATA",
    ):
        sock.sendall(command + b"\r\n")
        line = file.readline()
        while line[3:4] == b"-":
            line = file.readline()
        assert line[:1] in (b"2", b"3"), line
    file.close()
    return sock


def test_disconnect_mid_data_stores_nothing(mail_host: MailHost) -> None:
    sock = _raw_session(mail_host)
    sock.sendall(SMALL + b"more text but no end of data\r\n")
    sock.close()
    # The server notices the EOF on its next read; a fresh session proves it moved on.
    with smtp(mail_host) as client:
        client.noop()
    assert count(mail_host) == 0
    assert not any(mail_host.root.glob("alice/tmp/*"))


def test_malformed_commands_get_rfc_replies(mail_host: MailHost) -> None:
    with smtp(mail_host) as client:
        assert client.docmd("FOO")[0] == 500
        assert client.docmd("MAIL", "FROM:<a@b.test>")[0] == 503  # no HELO/EHLO yet
        client.ehlo()
        assert client.docmd("MAIL", "TO:<a@b.test>")[0] == 501  # syntax error
        assert client.docmd("RCPT", "TO:<alice@example.test>")[0] == 503  # no MAIL yet
        assert client.docmd("MAIL", "FROM:<a@b.test> SIZE=lots")[0] == 501
        assert client.docmd("DATA")[0] == 503
        assert client.noop()[0] == 250


def test_starttls_then_deliver(mail_host: MailHost) -> None:
    with smtp(mail_host) as client:
        client.ehlo()
        assert client.has_extn("starttls")
        client.starttls(context=mail_host.tls())
        client.ehlo()
        client.sendmail("a@elsewhere.test", ["alice@example.test"], SMALL)
    [entry] = mail_host.store.maildir("alice").scan()
    assert b"with ESMTPS id" in entry.path.read_bytes()


def test_implicit_tls_port(mail_host: MailHost) -> None:
    with smtplib.SMTP_SSL(
        "127.0.0.1", mail_host.ports["smtps"], context=mail_host.tls(), timeout=30
    ) as client:
        client.sendmail("a@elsewhere.test", ["bob@example.test"], SMALL)
    assert count(mail_host, "bob") == 1


def test_submission_requires_tls_and_auth(mail_host: MailHost) -> None:
    with smtp(mail_host, "submission") as client:
        client.ehlo()
        assert not client.has_extn("auth")  # AUTH only after STARTTLS
        code, _ = client.mail("alice@example.test")
        assert code == 530  # must issue STARTTLS first
        client.starttls(context=mail_host.tls())
        client.ehlo()
        assert "PLAIN" in client.esmtp_features["auth"]
        code, _ = client.mail("alice@example.test")
        assert code == 530  # authentication required
        with pytest.raises(smtplib.SMTPAuthenticationError):
            client.login("alice", "wrong")
        client.login("alice", PASSWORD)
        client.sendmail("alice@example.test", ["bob@example.test"], SMALL)
    [entry] = mail_host.store.maildir("bob").scan()
    assert b"with ESMTPSA id" in entry.path.read_bytes()


def test_auth_brute_force_locks_out_source(mail_host: MailHost) -> None:
    with smtp(mail_host, "submission") as client:
        client.starttls(context=mail_host.tls())
        client.ehlo()
        for _ in range(5):
            with pytest.raises(smtplib.SMTPAuthenticationError):
                client.login("alice", "guess")
        # locked out: even the right password fails now
        with pytest.raises(smtplib.SMTPAuthenticationError):
            client.login("alice", PASSWORD)


def test_connections_over_the_limit_get_421(tmp_path: Path) -> None:
    host, stop = start_host(tmp_path, max_connections=1)
    try:
        with smtp(host) as first:
            first.noop()
            with pytest.raises(smtplib.SMTPConnectError) as info:
                smtp(host)
            assert info.value.smtp_code == 421
            assert first.noop()[0] == 250  # the admitted session is unaffected
    finally:
        stop()


def test_auth_login_mechanism(mail_host: MailHost) -> None:
    with smtp(mail_host, "submission") as client:
        client.starttls(context=mail_host.tls())
        client.ehlo()
        client.user, client.password = "bob", PASSWORD
        code, _ = client.auth("LOGIN", client.auth_login)
        assert code == 235
