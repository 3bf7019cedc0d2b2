"""The imap kind with imaplib and raw sockets: TLS, FETCH, SEARCH, STORE, EXPUNGE, IDLE."""

from __future__ import annotations

import imaplib
import re
import socket

import pytest

from tests.host.mail.conftest import PASSWORD, MailHost
from tests.host.mail.test_roundtrip import MESSAGE, send

MULTIPART = (
    b"From: Dave <dave@elsewhere.test>\r\n"
    b"To: alice@example.test, Bob <bob@example.test>\r\n"
    b"Subject: report\r\n"
    b"Date: Tue, 24 Nov 2026 10:00:00 +0000\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="XYZ"\r\n'
    b"\r\n"
    b"--XYZ\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"see attachment\r\n"
    b"--XYZ\r\n"
    b"Content-Type: application/octet-stream; name=data.bin\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b'Content-Disposition: attachment; filename="data.bin"\r\n'
    b"\r\n"
    b"AAECAw==\r\n"
    b"--XYZ--\r\n"
)


def login(host: MailHost, which: str = "imap") -> imaplib.IMAP4:
    if which == "imaps":
        client: imaplib.IMAP4 = imaplib.IMAP4_SSL(
            "127.0.0.1", host.ports[which], ssl_context=host.tls(), timeout=30
        )
    else:
        client = imaplib.IMAP4("127.0.0.1", host.ports[which], timeout=30)
    client.login("alice", PASSWORD)
    return client


def test_starttls_and_capabilities(mail_host: MailHost) -> None:
    client = imaplib.IMAP4("127.0.0.1", mail_host.ports["imap"], timeout=30)
    try:
        assert "STARTTLS" in client.capabilities
        assert "IMAP4REV1" in client.capabilities
        client.starttls(ssl_context=mail_host.tls())
        assert "STARTTLS" not in client.capabilities
        client.login("alice", PASSWORD)
        assert client.select("INBOX")[0] == "OK"
    finally:
        client.logout()


def test_implicit_tls_993_role(mail_host: MailHost) -> None:
    send(mail_host)
    client = login(mail_host, "imaps")
    try:
        assert client.select("INBOX") == ("OK", [b"1"])
    finally:
        client.logout()


def test_authenticate_plain_and_bad_login(mail_host: MailHost) -> None:
    client = imaplib.IMAP4("127.0.0.1", mail_host.ports["imap"], timeout=30)
    try:
        with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
            client.login("alice", "wrong")
        typ, _ = client.authenticate("PLAIN", lambda _: b"\0alice\0" + PASSWORD.encode())
        assert typ == "OK"
    finally:
        client.logout()


def test_list_lsub_status_examine(mail_host: MailHost) -> None:
    send(mail_host)
    client = login(mail_host)
    try:
        assert client.list() == ("OK", [b'(\\HasNoChildren) "/" INBOX'])
        assert client.lsub()[1] == [b'(\\HasNoChildren) "/" INBOX']
        typ, status = client.status("INBOX", "(MESSAGES RECENT UNSEEN UIDNEXT UIDVALIDITY)")
        assert typ == "OK"
        assert re.search(rb"MESSAGES 1 RECENT 1 UNSEEN 1 UIDNEXT 2 UIDVALIDITY \d+", status[0])
        assert client.select("INBOX", readonly=True) == ("OK", [b"1"])
        assert client.store("1", "+FLAGS", "(\\Seen)")[0] == "NO"  # read-only
        assert client.select("Nope")[0] == "NO"
    finally:
        client.logout()


def test_fetch_structure_envelope_sections(mail_host: MailHost) -> None:
    send(mail_host, MULTIPART)
    client = login(mail_host)
    try:
        client.select("INBOX")
        typ, data = client.fetch("1", "(BODYSTRUCTURE ENVELOPE RFC822.SIZE INTERNALDATE UID)")
        assert typ == "OK"
        text = data[0]
        assert isinstance(text, bytes)
        assert (
            b'BODYSTRUCTURE (("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "7BIT" 14 1 NIL NIL NIL NIL)'
            b'("APPLICATION" "OCTET-STREAM" ("NAME" "data.bin") NIL NIL "BASE64" 8 NIL '
            b'("ATTACHMENT" ("FILENAME" "data.bin")) NIL NIL) "MIXED" ("BOUNDARY" "XYZ") NIL NIL NIL)'
        ) in text
        assert b'"report" (("Dave" NIL "dave" "elsewhere.test"))' in text
        assert b'((NIL NIL "alice" "example.test")("Bob" NIL "bob" "example.test"))' in text
        size = mail_host.store.maildir("alice").scan()[0].size
        assert b"RFC822.SIZE %d" % size in text
        assert re.search(rb'INTERNALDATE "\d\d-\w{3}-\d{4} \d\d:\d\d:\d\d \+0000"', text)
        typ, data = client.fetch(
            "1", "(BODY.PEEK[1] BODY.PEEK[2.MIME] BODY.PEEK[HEADER.FIELDS (SUBJECT)])"
        )
        parts = [p[1] for p in data if isinstance(p, tuple)]
        assert parts == [
            b"see attachment",  # the CRLF before a boundary belongs to it (RFC 2046 5.1.1)
            b"Content-Type: application/octet-stream; name=data.bin\r\n"
            b"Content-Transfer-Encoding: base64\r\n"
            b'Content-Disposition: attachment; filename="data.bin"\r\n\r\n',
            b"Subject: report\r\n\r\n",
        ]
        typ, data = client.fetch("1", "(BODY.PEEK[TEXT]<0.7>)")
        assert data[0] == (b"1 (BODY[TEXT]<0> {7}", b"--XYZ\r\n")
    finally:
        client.logout()


def test_search_store_expunge_and_uid(mail_host: MailHost) -> None:
    send(mail_host)
    send(mail_host, MULTIPART)
    send(mail_host, MESSAGE.replace(b"round trip", b"third one"))
    client = login(mail_host)
    try:
        client.select("INBOX")
        assert client.search(None, "ALL") == ("OK", [b"1 2 3"])
        assert client.search(None, "SUBJECT", '"report"') == ("OK", [b"2"])
        assert client.search(None, "FROM", "carol") == ("OK", [b"1 3"])
        assert client.search(None, "OR", "SUBJECT", "third", "BODY", "attachment") == (
            "OK",
            [b"2 3"],
        )
        assert client.search(None, "NOT", "LARGER", "100000", "SINCE", "1-Jan-2020") == (
            "OK",
            [b"1 2 3"],
        )
        assert client.search(None, "SENTON", "24-Nov-2026") == ("OK", [b"2"])
        client.store("2", "+FLAGS", "(\\Deleted \\Flagged)")
        assert client.search(None, "DELETED") == ("OK", [b"2"])
        assert client.search(None, "UNSEEN", "UNDELETED") == ("OK", [b"1 3"])
        assert client.expunge() == ("OK", [b"2"])
        assert client.uid("SEARCH", "ALL") == ("OK", [b"1 3"])
        _typ, data = client.uid("FETCH", "3", "(FLAGS)")
        assert data == [b"2 (UID 3 FLAGS (\\Recent))"]
    finally:
        client.logout()
    [first, _third] = mail_host.store.maildir("alice").scan()
    assert b"round trip" in first.path.read_bytes()
    assert first.path.name.endswith(":2,")  # moved to cur/, no flags


def test_flags_become_maildir_info(mail_host: MailHost) -> None:
    send(mail_host)
    client = login(mail_host)
    try:
        client.select("INBOX")
        client.store("1", "+FLAGS", "(\\Seen \\Answered \\Flagged \\Draft)")
    finally:
        client.logout()
    [entry] = mail_host.store.maildir("alice").scan()
    assert entry.path.parent.name == "cur"
    assert entry.path.name.endswith(":2,DFRS")


def test_expunge_seen_by_other_session(mail_host: MailHost) -> None:
    send(mail_host)
    send(mail_host, MULTIPART)
    one, two = login(mail_host), login(mail_host)
    try:
        one.select("INBOX")
        two.select("INBOX")
        two.response("EXISTS")  # drop SELECT's untagged EXISTS
        one.store("1", "+FLAGS", "(\\Deleted)")
        one.expunge()
        typ, _ = two.noop()
        assert typ == "OK"
        assert two.response("EXPUNGE") == ("EXPUNGE", [b"1"])
        assert two.search(None, "ALL") == ("OK", [b"1"])
        send(mail_host)
        two.noop()
        assert two.response("EXISTS") == ("EXISTS", [b"2"])
    finally:
        one.logout()
        two.logout()


def _raw(host: MailHost) -> tuple[socket.socket, object]:
    sock = socket.create_connection(("127.0.0.1", host.ports["imap"]), timeout=30)
    file = sock.makefile("rb")
    assert file.readline().startswith(b"* OK")
    return sock, file


def test_idle_pushes_new_mail(mail_host: MailHost) -> None:
    sock, file = _raw(mail_host)
    with sock:
        readline = file.readline  # type: ignore[attr-defined]
        sock.sendall(b'a LOGIN alice "' + PASSWORD.encode() + b'"\r\n')
        assert readline().startswith(b"a OK")
        sock.sendall(b"b SELECT INBOX\r\n")
        while not readline().startswith(b"b OK"):
            pass
        sock.sendall(b"c IDLE\r\n")
        assert readline() == b"+ idling\r\n"
        send(mail_host)
        assert readline() == b"* 1 EXISTS\r\n"  # pushed without any command from us
        assert readline() == b"* 1 RECENT\r\n"
        sock.sendall(b"DONE\r\n")
        assert readline().startswith(b"c OK")
        file.close()  # type: ignore[attr-defined]


def test_big_literal_refused_before_it_is_sent(mail_host: MailHost) -> None:
    sock, file = _raw(mail_host)
    with sock:
        readline = file.readline  # type: ignore[attr-defined]
        sock.sendall(b"a LOGIN {100000000}\r\n")
        reply = readline()
        assert reply.startswith(b"a BAD [TOOBIG]"), reply
        # A literal within the limit gets the continuation and works.
        sock.sendall(b"b LOGIN {5}\r\n")
        assert readline().startswith(b"+ ")
        sock.sendall(b'alice "' + PASSWORD.encode() + b'"\r\n')
        assert readline().startswith(b"b OK")
        file.close()  # type: ignore[attr-defined]


def test_malformed_commands_get_bad(mail_host: MailHost) -> None:
    sock, file = _raw(mail_host)
    with sock:
        readline = file.readline  # type: ignore[attr-defined]
        replies = []
        for line in (
            b"a FETCH 1 FLAGS",  # not selected
            b"b BOGUS",
            b"c LOGIN (unbalanced",
            b'd LOGIN "unterminated',
            b"+ NOOP",
            b"e SELECT",
            b"f " + b"A" * 70000,
            b"g NOOP",
        ):
            sock.sendall(line + b"\r\n")
            replies.append(readline())
        file.close()  # type: ignore[attr-defined]
    assert [r.split(b" ")[:2] for r in replies] == [
        [b"a", b"BAD"],
        [b"b", b"BAD"],
        [b"c", b"BAD"],
        [b"d", b"BAD"],
        [b"*", b"BAD"],
        [b"e", b"BAD"],
        [b"*", b"BAD"],
        [b"g", b"OK"],
    ]


def test_plaintext_client_on_implicit_tls_port_is_dropped(mail_host: MailHost) -> None:
    with socket.create_connection(("127.0.0.1", mail_host.ports["imaps"]), timeout=30) as sock:
        sock.sendall(b"a LOGIN alice secret\r\n")
        try:
            leftover = sock.recv(4096)
        except ConnectionResetError:
            leftover = b""
        assert not leftover.startswith(b"* OK")  # never an IMAP greeting in the clear
    client = login(mail_host, "imaps")  # and the server goes on serving
    client.logout()
    assert mail_host.call(lambda: mail_host.apps["imaps"].counters.errors) == 0


def test_append_copy_and_uid_store(mail_host: MailHost) -> None:
    client = login(mail_host)
    try:
        typ, _ = client.append("INBOX", "(\\Seen \\Draft)", None, MESSAGE)
        assert typ == "OK"
        assert client.append("Sent", None, None, MESSAGE)[0] == "NO"  # only INBOX is served
        assert client.select("INBOX") == ("OK", [b"1"])
        assert client.copy("1", "INBOX")[0] == "OK"
        client.noop()
        assert client.uid("SEARCH", "DRAFT") == ("OK", [b"1 2"])
        _typ, data = client.uid("STORE", "2", "-FLAGS", "(\\Draft)")
        assert data == [b"2 (UID 2 FLAGS (\\Seen))"]
        _typ, data = client.fetch("2", "(BODY.PEEK[TEXT])")
        assert data[0] == (
            b"2 (BODY[TEXT] {%d}" % len(MESSAGE.split(b"\r\n\r\n", 1)[1]),
            MESSAGE.split(b"\r\n\r\n", 1)[1],
        )
    finally:
        client.logout()
    entries = mail_host.store.maildir("alice").scan()
    assert sorted(e.path.name.rsplit(":2,", 1)[1] for e in entries) == ["DS", "S"]
    assert all(e.path.read_bytes() == MESSAGE for e in entries)


def test_fetch_larger_than_one_batch_over_the_wire(mail_host: MailHost) -> None:
    box = mail_host.store.maildir("alice")
    bodies = [b"Subject: big %d\r\n\r\n" % n + b"%d" % n * 300_000 + b"\r\n" for n in range(6)]
    for body in bodies:
        box.deliver(body)
    client = login(mail_host)
    try:
        client.select("INBOX")
        typ, data = client.fetch("1:*", "(BODY.PEEK[])")
        assert typ == "OK"
        assert [part[1] for part in data if isinstance(part, tuple)] == bodies
        assert client.noop()[0] == "OK"  # and the session is in step afterwards
    finally:
        client.logout()
