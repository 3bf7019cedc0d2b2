"""Hostile peers against the mail kinds, each attack made the way an attacker makes it.

Real clients and raw sockets on loopback, bounded in count and time: chained literals
before login against a real ``portkit serve`` (its memory measured), parallel password
guesses, deeply nested MIME, control characters in HELO/EHLO and addresses, ``<Postmaster>``
and one address holding every connection slot (127.0.0.2 is the second source address).
"""

from __future__ import annotations

import base64
import contextlib
import imaplib
import poplib
import re
import smtplib
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from portkit.host.apps.mail import hash_password
from tests.host._helpers import ServeProcess, addresses
from tests.host.mail.conftest import PASSWORD, MailHost, start_host

LITERAL = 1_000_000
CHAINED = 300
GUESSES = 39
TIMEOUT = 30.0


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for pid {pid}")


def drain(sock: socket.socket, into: bytearray) -> threading.Thread:
    """Read everything the server says in the background (it must never block on us)."""

    def run() -> None:
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                into.extend(chunk)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_chained_literals_before_login_keep_the_server_small(tmp_path: Path) -> None:
    config = tmp_path / "serve.toml"
    config.write_text(
        "[apps.imap]\n"
        'kind = "imap"\n'
        'listen = ["127.0.0.1:0"]\n'
        'maildir = "mail"\n'
        f'users = ["alice:{hash_password(PASSWORD, n=16, r=1, p=1)}"]\n'
        # Each chained literal is a line too long, answered BAD: by default the connection
        # would be closed after a few; here the caps alone must keep the server small.
        "max-bad-commands = 100000\n"
    )
    with ServeProcess(config, tmp_path) as serve:
        [(host, port)] = addresses(serve.start(), "imap")
        assert serve.proc is not None
        pid = serve.proc.pid
        before = rss_kib(pid)
        replies = bytearray()
        with socket.create_connection((host, port), timeout=TIMEOUT) as sock:
            reader = drain(sock, replies)
            # The attack does not wait for "+": every literal goes out whatever the answer.
            sock.sendall(b"c NOSUCHCMD {%d}\r\n" % LITERAL)
            payload = b"x" * LITERAL + b" {%d}\r\n" % LITERAL
            for _ in range(CHAINED):
                sock.sendall(payload)
            sock.sendall(b"x" * LITERAL + b"\r\nd NOOP\r\n")
            deadline = time.monotonic() + TIMEOUT
            while b"d OK" not in replies and time.monotonic() < deadline:
                time.sleep(0.05)
            peak = rss_kib(pid, "VmHWM")
            # A failed login with a long user name (as long as a command may be before
            # login) is logged, but not in full.
            user = b"u" * 60_000
            sock.sendall(b"e LOGIN {%d+}\r\n" % len(user) + user + b" wrong\r\nf LOGOUT\r\n")
            reader.join(TIMEOUT)
    text = bytes(replies)
    assert (peak - before) < 100 * 1024, f"grew from {before} KiB to a peak of {peak} KiB"
    assert b"c BAD [TOOBIG]" in text
    assert b"+ ready for literal data" not in text  # not one chained literal was taken
    assert b"d OK NOOP completed" in text
    assert b"e NO [AUTHENTICATIONFAILED]" in text
    log = serve.stderr()
    assert "failed login for 'uuuu" in log
    assert max(len(line) for line in log.splitlines()) < 1000


# -- parallel guesses --------------------------------------------------------------------


@pytest.fixture
def strict_host(tmp_path: Path) -> Iterator[MailHost]:
    """alice with the default (slow) scrypt, the default lockout of 10, no delays."""
    users = (
        f"alice:{hash_password(PASSWORD)}",
        f"bob:{hash_password(PASSWORD, n=16, r=1, p=1)}",
    )
    host, stop = start_host(tmp_path, users=users, login_lockout_after=10)
    try:
        yield host
    finally:
        stop()


def _read_until(sock: socket.socket, pattern: bytes) -> bytes:
    data = b""
    while not re.search(pattern, data):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def smtp_guess(port: int) -> Callable[[str], tuple[socket.socket, bytes]]:
    def connect(password: str) -> tuple[socket.socket, bytes]:
        sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        sock.sendall(b"EHLO attacker.test\r\n")
        _read_until(sock, rb"250 [^\r]*\r\n")
        token = base64.b64encode(f"\0alice\0{password}".encode())
        return sock, b"AUTH PLAIN " + token + b"\r\n"

    return connect


def imap_guess(port: int) -> Callable[[str], tuple[socket.socket, bytes]]:
    def connect(password: str) -> tuple[socket.socket, bytes]:
        sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        _read_until(sock, rb"\* OK[^\r]*\r\n")
        return sock, f'a LOGIN alice "{password}"\r\n'.encode()

    return connect


def pop3_guess(port: int) -> Callable[[str], tuple[socket.socket, bytes]]:
    def connect(password: str) -> tuple[socket.socket, bytes]:
        sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        _read_until(sock, rb"\+OK[^\r]*\r\n")
        sock.sendall(b"USER alice\r\n")
        _read_until(sock, rb"\+OK[^\r]*\r\n")
        return sock, f"PASS {password}\r\n".encode()

    return connect


REPLY = {"smtp": rb"^(\d{3}) ", "imap": rb"^a (OK|NO|BAD)", "pop3": rb"^([+-]\w+)"}
ACCEPTED = {"smtp": b"235", "imap": b"OK", "pop3": b"+OK"}


@pytest.mark.parametrize("kind", ["smtp", "imap", "pop3"])
def test_parallel_guesses_cannot_get_around_the_lockout(strict_host: MailHost, kind: str) -> None:
    port = strict_host.ports[kind]
    connect = {"smtp": smtp_guess, "imap": imap_guess, "pop3": pop3_guess}[kind](port)
    with ThreadPoolExecutor(GUESSES + 1) as pool:
        ready = list(pool.map(connect, [f"wrong{n}" for n in range(GUESSES)] + [PASSWORD]))
    socks = [sock for sock, _ in ready]
    try:
        # Every guess is on the wire before the first answer: they are in flight together.
        for sock, line in ready:
            sock.sendall(line)

        def answer(sock: socket.socket) -> bytes:
            data = _read_until(sock, rb"\r\n$")
            m = re.search(REPLY[kind], data.split(b"\r\n")[-2], re.MULTILINE)
            assert m is not None, data
            return m.group(1)

        with ThreadPoolExecutor(GUESSES + 1) as pool:
            answers = list(pool.map(answer, socks))
    finally:
        for sock in socks:
            sock.close()
    assert answers[-1] != ACCEPTED[kind], "the right password got through after 39 guesses"
    assert ACCEPTED[kind] not in answers
    # Afterwards alice is locked out from this address, but not from another one.
    sock, line = connect(PASSWORD)
    with sock:
        sock.sendall(line)
        assert not _read_until(sock, rb"\r\n$").split(b"\r\n")[-2].startswith(ACCEPTED[kind])
    if kind == "imap":
        with socket.create_connection(
            ("127.0.0.1", port), timeout=TIMEOUT, source_address=("127.0.0.2", 0)
        ) as other:
            _read_until(other, rb"\* OK[^\r]*\r\n")
            other.sendall(f'a LOGIN alice "{PASSWORD}"\r\n'.encode())
            assert b"a OK" in _read_until(other, rb"a (OK|NO|BAD)[^\r]*\r\n")


def test_own_account_success_does_not_reset_alices_counter(strict_host: MailHost) -> None:
    port = strict_host.ports["imap"]
    for _round in range(4):
        client = imaplib.IMAP4("127.0.0.1", port, timeout=TIMEOUT)
        for n in range(9):
            with pytest.raises(imaplib.IMAP4.error):
                client.login("alice", f"wrong{n}")
        client.logout()
        with imaplib.IMAP4("127.0.0.1", port, timeout=TIMEOUT) as own:
            own.login("bob", PASSWORD)  # the attacker's own account
    with (
        imaplib.IMAP4("127.0.0.1", port, timeout=TIMEOUT) as client,
        pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"),
    ):
        client.login("alice", PASSWORD)


# -- hostile content ---------------------------------------------------------------------


def nested_message(depth: int) -> bytes:
    body = b"Content-Type: text/plain\r\n\r\nthe innermost part\r\n"
    for level in range(depth, 0, -1):
        boundary = b"b%d" % level
        body = (
            b'Content-Type: multipart/mixed; boundary="%s"\r\n\r\n--%s\r\n' % (boundary, boundary)
            + body
            + b"--%s--\r\n" % boundary
        )
    return (
        b"From: mallory@elsewhere.test\r\nTo: alice@example.test\r\nSubject: deep\r\n"
        b"Date: Tue, 24 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n" + body
    )


def flatten(data: Sequence[bytes | tuple[bytes, bytes] | None]) -> bytes:
    """imaplib's FETCH data (lines and (line, literal) pairs) as one byte string."""
    return b"".join(p if isinstance(p, bytes) else b"".join(p) for p in data if p is not None)


@pytest.mark.parametrize("depth", [500, 3000])
def test_deeply_nested_mime_stays_fetchable(mail_host: MailHost, depth: int) -> None:
    raw = nested_message(depth)
    with smtplib.SMTP("127.0.0.1", mail_host.ports["smtp"], timeout=TIMEOUT) as smtp:
        smtp.sendmail("mallory@elsewhere.test", ["alice@example.test"], raw)
    with imaplib.IMAP4("127.0.0.1", mail_host.ports["imap"], timeout=TIMEOUT) as client:
        client.login("alice", PASSWORD)
        client.select("INBOX")
        typ, data = client.fetch("1:*", "(FLAGS BODYSTRUCTURE)")
        assert typ == "OK"
        structure = flatten(data)
        # Bounded like dovecot: 100 levels of structure, then one flat part.
        assert structure.count(b'"MIXED"') == 100
        assert b'("TEXT" "PLAIN"' in structure
        typ, data = client.fetch("1", "(ENVELOPE BODY[1.1.1.1])")
        assert typ == "OK"
        assert b'"deep"' in flatten(data)
        typ, data = client.search(None, "TEXT", "innermost")
        assert data == [b"1"]
    pop = poplib.POP3("127.0.0.1", mail_host.ports["pop3"], timeout=TIMEOUT)
    try:
        pop.user("alice")
        pop.pass_(PASSWORD)
        assert b"the innermost part" in b"\r\n".join(pop.retr(1)[1])
    finally:
        pop.quit()


def test_control_characters_in_helo_and_addresses_create_no_header(mail_host: MailHost) -> None:
    port = mail_host.ports["smtp"]
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        _read_until(sock, rb"220 [^\r]*\r\n")
        for line, code in [
            (b"EHLO x\rX-Injected: yes", b"501"),
            (b"HELO x\rX-Injected: yes", b"501"),
            (b"EHLO x\x00X-Injected: yes", b"501"),
            (b"EHLO client.test", b"250"),
            (b'MAIL FROM:<"a\rX-Injected: yes"@elsewhere.test>', b"553"),
            (b"MAIL FROM:<mallory@elsewhere.test>", b"250"),
            (b'RCPT TO:<"alice\rX-Injected: yes"@example.test>', b"553"),
            (b"RCPT TO:<alice@example.test>", b"250"),
            (b"DATA", b"354"),
            (b"Subject: hello\r\n\r\nhi\r\n.", b"250"),
            (b"QUIT", b"221"),
        ]:
            sock.sendall(line + b"\r\n")
            reply = _read_until(sock, rb"(^|\n)\d{3} [^\r]*\r\n")
            assert reply.split(b"\r\n")[-2][:3] == code, (line, reply)
    with imaplib.IMAP4("127.0.0.1", mail_host.ports["imap"], timeout=TIMEOUT) as client:
        client.login("alice", PASSWORD)
        client.select("INBOX")
        assert client.search(None, "SUBJECT", "hello")[1] == [b"1"]  # the message is there
        assert client.search(None, "HEADER", "X-Injected", "yes")[1] == [b""]
        _, data = client.fetch("1", "(BODY.PEEK[HEADER])")
        header = data[0][1] if isinstance(data[0], tuple) else b""
        assert b"Received: from client.test" in header
        assert b"\r" not in header.replace(b"\r\n", b"")


def test_postmaster_without_domain_is_accepted(mail_host: MailHost) -> None:
    with smtplib.SMTP("127.0.0.1", mail_host.ports["smtp"], timeout=TIMEOUT) as smtp:
        refused = smtp.sendmail(
            "someone@elsewhere.test", ["Postmaster"], b"Subject: to the postmaster\r\n\r\nhi\r\n"
        )
    assert refused == {}
    # No user is called postmaster here: the first configured user (alice) receives it.
    [entry] = mail_host.store.maildir("alice").scan()
    assert b"to the postmaster" in mail_host.store.maildir("alice").read(entry)


# -- connection slots per address ----------------------------------------------------------


GREETING = {"smtp": rb"^220 ", "pop3": rb"^\+OK", "imap": rb"^\* OK"}


@pytest.mark.parametrize("kind", ["smtp", "pop3", "imap"])
def test_one_address_cannot_hold_every_slot(tmp_path: Path, kind: str) -> None:
    host, stop = start_host(tmp_path, max_connections=8, max_connections_per_address=3)
    held: list[socket.socket] = []
    try:
        port = host.ports[kind]
        # idle clients that would keep their slots for the idle timeout
        held.extend(
            socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) for _ in range(8)
        )
        with socket.create_connection(
            ("127.0.0.1", port), timeout=TIMEOUT, source_address=("127.0.0.2", 0)
        ) as other:
            assert re.match(GREETING[kind], other.recv(4096)), "another address was not served"
        greeted = 0
        for sock in held:
            try:
                first = sock.recv(4096)
            except ConnectionResetError:  # refused with a reset
                first = b""
            greeted += bool(re.match(GREETING[kind], first))
        assert greeted == 3  # the rest were refused (SMTP: 421) or closed at once
    finally:
        for sock in held:
            sock.close()
        stop()


@pytest.mark.parametrize(("kind", "noop"), [("pop3", b"CAPA\r\n"), ("imap", b"a NOOP\r\n")])
def test_a_client_that_never_logs_in_is_dropped(tmp_path: Path, kind: str, noop: bytes) -> None:
    host, stop = start_host(tmp_path, login_timeout=1.0)
    try:
        with socket.create_connection(("127.0.0.1", host.ports[kind]), timeout=TIMEOUT) as sock:
            # Busy, never idle, never logged in: dropped at the login timeout all the same.
            data, deadline = b"", time.monotonic() + TIMEOUT
            while time.monotonic() < deadline:
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    sock.sendall(noop)
                sock.settimeout(0.2)
                try:
                    chunk = sock.recv(4096)
                except TimeoutError:
                    continue
                except ConnectionResetError:
                    chunk = b""
                if not chunk:
                    break
                data += chunk
            else:
                pytest.fail("the connection was still open after the test's deadline")
        assert data.count(b"OK") >= 2  # it was served while it lasted
    finally:
        stop()


def _smtp_to_data(port: int, source: str = "127.0.0.1") -> tuple[socket.socket, bytes]:
    """A connection that has sent MAIL, RCPT and DATA; return it and the reply to DATA."""
    sock = socket.create_connection(("127.0.0.1", port), TIMEOUT, source_address=(source, 0))
    _read_until(sock, rb"220 [^\r]*\r\n")
    reply = b""
    for line in (b"EHLO client.test", b"MAIL FROM:<a@elsewhere.test>", b"RCPT TO:<bob@localhost>"):
        sock.sendall(line + b"\r\n")
        reply = _read_until(sock, rb"(^|\n)\d{3} [^\r]*\r\n")
        assert reply.split(b"\r\n")[-2].startswith(b"250"), reply
    sock.sendall(b"DATA\r\n")
    return sock, _read_until(sock, rb"\d{3} [^\r]*\r\n")[:3]


def test_one_address_cannot_hold_every_message_transfer(tmp_path: Path) -> None:
    host, stop = start_host(tmp_path, max_transfers_per_address=2)
    port = host.ports["smtp"]
    socks: list[socket.socket] = []
    try:
        replies = []
        for _ in range(3):  # each message would sit in memory until its end arrives
            sock, reply = _smtp_to_data(port)
            socks.append(sock)
            replies.append(reply)
        assert replies == [b"354", b"354", b"452"]
        other, reply = _smtp_to_data(port, "127.0.0.2")
        socks.append(other)
        assert reply == b"354"  # another address is served at once
        socks[0].sendall(b"Subject: one\r\n\r\nfirst\r\n.\r\n")
        assert _read_until(socks[0], rb"\d{3} [^\r]*\r\n").startswith(b"250")
        sock, reply = _smtp_to_data(port)
        socks.append(sock)
        assert reply == b"354"  # the finished transfer gave its slot back
    finally:
        for sock in socks:
            sock.close()
        stop()


@pytest.mark.parametrize(
    ("kind", "login", "logged_in", "noop", "done"),
    [
        (
            "pop3",
            b"USER alice\r\nPASS " + PASSWORD.encode() + b"\r\n",
            b"+OK maildrop",
            b"NOOP\r\n",
            b"+OK",
        ),
        (
            "imap",
            b'a LOGIN alice "' + PASSWORD.encode() + b'"\r\n',
            b"a OK",
            b"b NOOP\r\n",
            b"b OK",
        ),
    ],
)
def test_the_idle_timeout_counts_from_the_last_command(
    tmp_path: Path, kind: str, login: bytes, logged_in: bytes, noop: bytes, done: bytes
) -> None:
    host, stop = start_host(tmp_path, idle_timeout=1.0)
    try:
        with (
            socket.create_connection(("127.0.0.1", host.ports[kind]), timeout=TIMEOUT) as sock,
            sock.makefile("rb") as file,
        ):

            def answer(last: bytes) -> None:
                while not (line := file.readline()).startswith(last):
                    assert line, "dropped although it kept talking"

            file.readline()  # the greeting
            sock.sendall(login)
            answer(logged_in)
            # A command every 0.3 s for twice the idle timeout: each answered, never dropped.
            for _ in range(7):
                sock.sendall(noop)
                answer(done)
                time.sleep(0.3)
            # Then silence: dropped after the idle timeout (the read sees the end).
            assert file.read() == b""
    finally:
        stop()
