"""The pop3 kind with poplib: login methods, TLS, TOP/UIDL/DELE, the maildrop lock, faults."""

from __future__ import annotations

import base64
import poplib
import socket

import pytest

from tests.host.mail.conftest import PASSWORD, MailHost
from tests.host.mail.test_roundtrip import MESSAGE, send


def login(host: MailHost, which: str = "pop3") -> poplib.POP3:
    if which == "pop3s":
        client: poplib.POP3 = poplib.POP3_SSL(
            "127.0.0.1", host.ports[which], context=host.tls(), timeout=30
        )
    else:
        client = poplib.POP3("127.0.0.1", host.ports[which], timeout=30)
    client.user("alice")
    client.pass_(PASSWORD)
    return client


def test_capa_lists_rfc2449_capabilities(mail_host: MailHost) -> None:
    client = poplib.POP3("127.0.0.1", mail_host.ports["pop3"], timeout=30)
    try:
        caps = client.capa()
        assert {"TOP", "UIDL", "USER", "SASL", "STLS", "RESP-CODES"} <= set(caps)
        assert caps["SASL"] == ["PLAIN"]
    finally:
        client.quit()


def test_stls_then_login_and_retrieve(mail_host: MailHost) -> None:
    send(mail_host)
    client = poplib.POP3("127.0.0.1", mail_host.ports["pop3"], timeout=30)
    try:
        client.stls(context=mail_host.tls())
        assert "STLS" not in client.capa()
        client.user("alice")
        client.pass_(PASSWORD)
        _resp, lines, _ = client.retr(1)
        assert (b"\r\n".join(lines) + b"\r\n").endswith(MESSAGE)
    finally:
        client.quit()


def test_implicit_tls_995_role(mail_host: MailHost) -> None:
    send(mail_host)
    client = login(mail_host, "pop3s")
    try:
        assert client.stat()[0] == 1
    finally:
        client.quit()


def test_sasl_plain_login(mail_host: MailHost) -> None:
    client = poplib.POP3("127.0.0.1", mail_host.ports["pop3"], timeout=30)
    try:
        token = base64.b64encode(b"\0alice\0" + PASSWORD.encode()).decode()
        assert client._shortcmd(f"AUTH PLAIN {token}").startswith(b"+OK")  # type: ignore[attr-defined]
        assert client.stat() == (0, 0)
    finally:
        client.quit()


def test_top_uidl_list_dele_and_update(mail_host: MailHost) -> None:
    send(mail_host)
    send(mail_host, MESSAGE.replace(b"round trip", b"second"))
    client = login(mail_host)
    try:
        count, size = client.stat()
        assert count == 2
        _, listing, _ = client.list()
        sizes = [int(line.split()[1]) for line in listing]
        assert sum(sizes) == size
        entries = mail_host.store.maildir("alice").scan()
        assert sorted(sizes) == sorted(e.size for e in entries)
        _, uidl, _ = client.uidl()
        assert {line.split()[1].decode() for line in uidl} == {e.key for e in entries}
        _, top, _ = client.top(1, 1)
        assert b"Subject: round trip" in top
        assert top[-1] == b"Hello Alice."
        client.dele(1)
        with pytest.raises(poplib.error_proto, match="deleted"):
            client.retr(1)
        assert client.stat()[0] == 1
        client.rset()
        assert client.stat()[0] == 2
        client.dele(2)
    finally:
        client.quit()
    [left] = mail_host.store.maildir("alice").scan()
    assert b"round trip" in left.path.read_bytes()


def test_disconnect_without_quit_deletes_nothing(mail_host: MailHost) -> None:
    send(mail_host)
    client = login(mail_host)
    client.dele(1)
    client.close()  # no QUIT: RFC 1939 says no UPDATE state
    client = login(mail_host)  # and the lock was released
    try:
        assert client.stat()[0] == 1
    finally:
        client.quit()


def test_second_session_gets_in_use(mail_host: MailHost) -> None:
    first = login(mail_host)
    second = poplib.POP3("127.0.0.1", mail_host.ports["pop3"], timeout=30)
    try:
        second.user("alice")
        with pytest.raises(poplib.error_proto, match=r"IN-USE"):
            second.pass_(PASSWORD)
    finally:
        second.quit()
        first.quit()


def test_wrong_password_then_lockout(mail_host: MailHost) -> None:
    client = poplib.POP3("127.0.0.1", mail_host.ports["pop3"], timeout=30)
    try:
        for _ in range(5):
            client.user("alice")
            with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
                client.pass_("guess")
        client.user("alice")
        with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
            client.pass_(PASSWORD)  # locked out: the right password fails too
    finally:
        client.quit()


def test_malformed_and_out_of_state_commands(mail_host: MailHost) -> None:
    with socket.create_connection(("127.0.0.1", mail_host.ports["pop3"]), timeout=30) as sock:
        file = sock.makefile("rb")
        assert file.readline().startswith(b"+OK")
        replies = []
        for line in (b"STAT", b"RETR 1", b"PASS x", b"BOGUS", b"X" * 10000, b"\xff\xfe", b"QUIT"):
            sock.sendall(line + b"\r\n")
            replies.append(file.readline())
        file.close()
    assert [r[:4] for r in replies] == [b"-ERR"] * 6 + [b"+OK "]
    assert b"line too long" in replies[4]
