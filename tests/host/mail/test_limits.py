"""Limits of the mail kinds against peers that hold on: slow readers, bad commands, slots.

Real sockets on loopback (127.0.0.2 is a second source address), bounded in time: a
client that asks for a big message and reads none of it, a client that sends nothing but
invalid commands before login, and the two connection refusals of SMTP.
"""

from __future__ import annotations

import contextlib
import imaplib
import re
import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from portkit.host._app import Application
from tests.host.mail.conftest import PASSWORD, MailHost, start_host

TIMEOUT = 30.0
#: Far more than loopback's socket buffers take, so the server must wait for the reader.
BIG = 16 * 1024 * 1024


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {TIMEOUT:.0f}s")
        time.sleep(0.1)


Wrap = Callable[[socket.socket], socket.socket]


def _greeted(port: int, pattern: bytes, wrap: Wrap) -> bool:
    """Whether a new connection from 127.0.0.1 is served (greeted) now."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw:
        try:
            with wrap(raw) as sock:
                return re.match(pattern, sock.recv(4096)) is not None
        except (ConnectionResetError, ssl.SSLError):
            return False


def _open(host: MailHost, app: Application) -> int:
    return int(host.call(lambda: app.counters.connections_open))


def _small_receiver() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # A small window: the client's own buffer fills at once when it stops reading.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(TIMEOUT)
    return sock


# -- a client that asks for a big message and never reads it ---------------------------------


def _pop3_ask_and_stall(port: int, wrap: Wrap) -> socket.socket:
    raw = _small_receiver()
    raw.connect(("127.0.0.1", port))
    sock = wrap(raw)
    for line in (b"USER alice", b"PASS " + PASSWORD.encode()):
        sock.sendall(line + b"\r\n")
    data = b""
    while data.count(b"+OK") < 3:  # greeting, USER, PASS
        chunk = sock.recv(4096)
        assert chunk, data
        data += chunk
    sock.sendall(b"RETR 1\r\n")  # and never reads the answer
    return sock


def _imap_ask_and_stall(port: int, wrap: Wrap) -> socket.socket:
    raw = _small_receiver()
    raw.connect(("127.0.0.1", port))
    sock = wrap(raw)
    sock.sendall(b'a LOGIN alice "' + PASSWORD.encode() + b'"\r\nb SELECT INBOX\r\n')
    data = b""
    while b"b OK" not in data:
        chunk = sock.recv(4096)
        assert chunk, data
        data += chunk
    sock.sendall(b"c FETCH 1 BODY[]\r\n")
    return sock


@pytest.mark.parametrize(
    ("kind", "stall", "greeting"),
    [
        ("pop3", _pop3_ask_and_stall, rb"^\+OK"),
        ("pop3s", _pop3_ask_and_stall, rb"^\+OK"),
        ("imap", _imap_ask_and_stall, rb"^\* OK"),
        ("imaps", _imap_ask_and_stall, rb"^\* OK"),
    ],
)
def test_a_client_that_does_not_read_its_message_loses_its_slot(
    tmp_path: Path, kind: str, stall: Callable[[int, Wrap], socket.socket], greeting: bytes
) -> None:
    # One connection per address, and an idle timeout far beyond the test: only the send
    # timeout can give the slot back.
    host, stop = start_host(
        tmp_path, max_connections_per_address=1, idle_timeout=3600.0, send_timeout=1.0
    )
    try:
        line = b"x" * 998 + b"\r\n"
        host.store.deliver(["alice"], b"Subject: big\r\n\r\n" + line * (BIG // len(line)))
        port, app = host.ports[kind], host.apps[kind]
        tls = host.tls()

        def wrap(sock: socket.socket) -> socket.socket:
            if not kind.endswith("s"):
                return sock
            return tls.wrap_socket(sock, server_hostname="localhost")

        sock = stall(port, wrap)
        try:
            assert _open(host, app) == 1
            assert not _greeted(port, greeting, wrap)  # the stalled client holds the one slot
            _wait_for(lambda: _open(host, app) == 0, "the stalled client was not dropped")
            assert _greeted(port, greeting, wrap)  # its slot is free again
            received = 0
            with contextlib.suppress(OSError):
                while chunk := sock.recv(1 << 20):
                    received += len(chunk)
            assert received < BIG  # dropped with most of the message unsent
        finally:
            sock.close()
    finally:
        stop()


def test_a_client_that_reads_too_slowly_loses_its_slot(tmp_path: Path) -> None:
    # It takes a little now and then (so it never stops entirely), far below the rate.
    host, stop = start_host(
        tmp_path, idle_timeout=3600.0, send_timeout=1.0, min_send_rate=1024 * 1024
    )
    try:
        line = b"x" * 998 + b"\r\n"
        host.store.deliver(["alice"], b"Subject: big\r\n\r\n" + line * (BIG // len(line)))
        app = host.apps["pop3"]
        sock = _pop3_ask_and_stall(host.ports["pop3"], lambda sock: sock)
        try:
            deadline = time.monotonic() + TIMEOUT
            with contextlib.suppress(OSError):
                while _open(host, app) and time.monotonic() < deadline:
                    if not sock.recv(4096):  # about 16 KB/s
                        break
                    time.sleep(0.25)
            assert _open(host, app) == 0, "the trickling client was not dropped"
        finally:
            sock.close()
    finally:
        stop()


# -- invalid commands before login -------------------------------------------------------------


def _exchange(sock: socket.socket, command: bytes) -> bytes:
    """Send one command line and return what came back until a reply ends (or EOF)."""
    sock.sendall(command + b"\r\n")
    data = b""
    while not re.search(rb"(^|\r\n)(\+OK|-ERR|\* BYE|[a-z]\d* (OK|NO|BAD))[^\r]*\r\n", data):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def _closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(4096) == b""
    except ConnectionResetError:
        return True


@pytest.mark.parametrize(
    ("kind", "bad", "refused", "ended"),
    [
        ("pop3", b"XYZZY", b"-ERR unknown command", b"-ERR too many invalid commands"),
        ("pop3", b"STAT", b"-ERR command STAT is not allowed", b"-ERR too many invalid commands"),
        ("imap", b"x XYZZY", b"x BAD unknown command", b"* BYE too many invalid commands"),
        ("imap", b"x LOGIN", b"x BAD LOGIN takes", b"* BYE too many invalid commands"),
    ],
)
def test_too_many_invalid_commands_before_login_close_the_connection(
    tmp_path: Path, kind: str, bad: bytes, refused: bytes, ended: bytes
) -> None:
    host, stop = start_host(tmp_path, max_bad_commands=3)
    try:
        with socket.create_connection(("127.0.0.1", host.ports[kind]), timeout=TIMEOUT) as sock:
            assert sock.recv(4096)  # greeting
            for _ in range(3):
                reply = _exchange(sock, bad)
                assert reply.startswith(refused), reply
                assert ended not in reply
            reply = _exchange(sock, bad)
            assert refused in reply, reply
            assert ended in reply, reply
            assert _closed(sock)
    finally:
        stop()


def test_invalid_commands_after_login_are_only_answered(tmp_path: Path) -> None:
    host, stop = start_host(tmp_path, max_bad_commands=3)
    try:
        with socket.create_connection(("127.0.0.1", host.ports["pop3"]), timeout=TIMEOUT) as sock:
            assert sock.recv(4096).startswith(b"+OK")
            assert _exchange(sock, b"USER alice").startswith(b"+OK")
            assert _exchange(sock, b"PASS " + PASSWORD.encode()).startswith(b"+OK")
            for _ in range(10):
                assert _exchange(sock, b"XYZZY") == b"-ERR unknown command\r\n"
            assert _exchange(sock, b"STAT") == b"+OK 0 0\r\n"
        imap = imaplib.IMAP4("127.0.0.1", host.ports["imap"], timeout=TIMEOUT)
        imap.login("alice", PASSWORD)
        for _ in range(10):
            with pytest.raises(imaplib.IMAP4.error, match="unknown command XYZZY"):
                imap.xatom("XYZZY")
        assert imap.noop()[0] == "OK"
        imap.logout()
    finally:
        stop()


# -- the two refusals of smtp --------------------------------------------------------------------


def test_smtp_says_which_connection_limit_refused(tmp_path: Path) -> None:
    host, stop = start_host(tmp_path, max_connections=3, max_connections_per_address=2)
    port = host.ports["smtp"]
    held: list[socket.socket] = []
    try:

        def connect(source: str) -> bytes:
            sock = socket.create_connection(
                ("127.0.0.1", port), timeout=TIMEOUT, source_address=(source, 0)
            )
            held.append(sock)
            return sock.recv(4096)

        assert connect("127.0.0.1").startswith(b"220 ")
        assert connect("127.0.0.1").startswith(b"220 ")
        # RFC 5321 3.8: 421 and close; 4.7.0 is this address's share, 4.3.2 the whole server.
        assert connect("127.0.0.1").startswith(b"421 4.7.0 ")
        assert connect("127.0.0.2").startswith(b"220 ")
        assert connect("127.0.0.3").startswith(b"421 4.3.2 ")
        assert host.apps["smtp"].counters.rejected == 2
    finally:
        for sock in held:
            sock.close()
        stop()
