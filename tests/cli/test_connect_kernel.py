"""``portkit connect`` over plain TCP with stdin and stdout of every kind it copies
differently: a regular file, a pipe, /dev/null, a file opened for appending (the kernel
moves the bytes where it can, ``splice`` and one large buffer; the rest is chunks).

Each case moves a few MB both ways through a real loopback server and compares SHA-256.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
ENV = {**os.environ, "PYTHONPATH": str(SRC)}
PAYLOAD = os.urandom(3 * 1024 * 1024 + 17)  # the server's bytes: not a multiple of a chunk
UPLOAD = os.urandom(2 * 1024 * 1024 + 5)  # the client's stdin
TIMEOUT = 60.0  # seconds: every socket operation and process in here is bounded


class Server:
    """A loopback server: sends ``payload`` while reading the client's bytes; once the
    client half-closes, answers ``GOT <sha256> <count>`` and closes."""

    def __init__(self, payload: bytes, *, reset_after: int | None = None) -> None:
        self.payload = payload
        self.reset_after = reset_after  # reset (RST) once this many bytes came in
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(TIMEOUT)
        self.port: int = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        conn.settimeout(TIMEOUT)
        with conn:
            sender = threading.Thread(target=conn.sendall, args=(self.payload,), daemon=True)
            sender.start()
            digest, count = hashlib.sha256(), 0
            while chunk := conn.recv(65536):
                digest.update(chunk)
                count += len(chunk)
                if self.reset_after is not None and count >= self.reset_after:
                    sender.join(TIMEOUT)  # the socket is not closed under its feet
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
                    return
            sender.join(TIMEOUT)
            conn.sendall(f"GOT {digest.hexdigest()} {count}\n".encode())

    def close(self) -> None:
        self.listener.close()
        self.thread.join(TIMEOUT)


@contextmanager
def server(payload: bytes = PAYLOAD, *, reset_after: int | None = None) -> Iterator[Server]:
    running = Server(payload, reset_after=reset_after)
    try:
        yield running
    finally:
        running.close()


def _reply() -> bytes:
    return f"GOT {hashlib.sha256(UPLOAD).hexdigest()} {len(UPLOAD)}\n".encode()


def _stdout_file(kind: str, path: Path) -> BinaryIO:
    if kind == "devnull":
        return open(os.devnull, "wb")
    return path.open("ab" if kind == "append" else "wb")  # O_APPEND: ">>"


def _connect(
    port: int, stdin_kind: str, stdout_kind: str, tmp_path: Path, *options: str
) -> tuple[int, bytes, str]:
    """Run ``portkit connect`` with UPLOAD on a stdin and a stdout of the kinds named;
    return (status, what stdout received, stderr)."""
    source = tmp_path / "upload.bin"
    source.write_bytes(UPLOAD)
    out_path = tmp_path / "out.bin"
    if stdout_kind == "append":
        out_path.write_bytes(b"before\n")
    argv = [sys.executable, "-m", "portkit", "connect", *options, f"127.0.0.1:{port}"]
    with (
        source.open("rb") as stdin_file,
        _stdout_file(stdout_kind, out_path) as out_file,
    ):
        stdout = subprocess.PIPE if stdout_kind == "pipe" else out_file
        if stdin_kind == "file":
            done = subprocess.run(
                argv,
                stdin=stdin_file,
                stdout=stdout,
                stderr=subprocess.PIPE,
                env=ENV,
                timeout=TIMEOUT,
                check=False,
            )
        else:
            # `cat` writes into the pipe as a shell pipeline would.
            cat = subprocess.Popen(["cat"], stdin=stdin_file, stdout=subprocess.PIPE)
            assert cat.stdout is not None
            done = subprocess.run(
                argv,
                stdin=cat.stdout,
                stdout=stdout,
                stderr=subprocess.PIPE,
                env=ENV,
                timeout=TIMEOUT,
                check=False,
            )
            cat.stdout.close()
            cat.wait(TIMEOUT)
    if stdout_kind == "devnull":
        received = b""
    else:
        received = done.stdout if stdout_kind == "pipe" else out_path.read_bytes()
    return done.returncode, received, done.stderr.decode()


@pytest.mark.parametrize("stdin_kind", ["file", "pipe"])
@pytest.mark.parametrize("stdout_kind", ["pipe", "file", "devnull", "append"])
def test_bytes_arrive_whole_both_ways(stdin_kind: str, stdout_kind: str, tmp_path: Path) -> None:
    with server() as peer:
        status, out, err = _connect(peer.port, stdin_kind, stdout_kind, tmp_path)
    total = len(PAYLOAD) + len(_reply())
    assert status == 0, err
    # The counts are the bytes that moved, whichever way they moved.
    assert err.splitlines()[-1] == (
        f"portkit: closed by the server, after our end of input: sent {len(UPLOAD)} bytes, "
        f"received {total}"
    )
    if stdout_kind == "devnull":
        return
    expected = PAYLOAD + _reply()  # the reply came after the half-close: it still flowed
    if stdout_kind == "append":
        expected = b"before\n" + expected  # appending keeps what the file held
    assert hashlib.sha256(out).hexdigest() == hashlib.sha256(expected).hexdigest()
    assert out == expected


def test_reset_by_the_peer_is_one_line(tmp_path: Path) -> None:
    with server(b"", reset_after=1) as peer:
        status, _, err = _connect(peer.port, "pipe", "file", tmp_path, "-q")
    assert status == 1
    assert err in (
        f"portkit: connection to 127.0.0.1:{peer.port} reset by peer\n",
        # the reset can meet our sending first
        f"portkit: 127.0.0.1:{peer.port} closed the connection while we were sending\n",
    )


def test_idle_timeout_fires_while_output_goes_to_a_file(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "portkit", "connect", "-q", "--idle-timeout", "0.5"]
    with socket.create_server(("127.0.0.1", 0)) as listener, (tmp_path / "out").open("wb") as out:
        port = listener.getsockname()[1]
        # The kernel accepts (the backlog) and nothing ever says a word; stdin stays open.
        with subprocess.Popen(
            [*argv, f"127.0.0.1:{port}"],
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=subprocess.PIPE,
            env=ENV,
        ) as proc:
            assert proc.stderr is not None
            try:
                status = proc.wait(TIMEOUT)  # its stdin is still open: only the timeout ends it
            finally:
                proc.kill()  # a no-op once it has exited
            err = proc.stderr.read()
    assert status == 4
    assert err == f"portkit: no data to or from 127.0.0.1:{port} for 0.5 s\n".encode()


def test_crlf_still_applies_while_the_replies_are_spliced(tmp_path: Path) -> None:
    # --crlf rewrites what is sent (chunk by chunk); the replies still go by the kernel.
    with server() as peer, (tmp_path / "out").open("wb") as out:
        done = subprocess.run(
            [sys.executable, "-m", "portkit", "connect", "-q", "--crlf", f"127.0.0.1:{peer.port}"],
            input=b"EHLO a\nQUIT\r\n",
            stdout=out,
            stderr=subprocess.PIPE,
            env=ENV,
            timeout=TIMEOUT,
            check=False,
        )
    sent = b"EHLO a\r\nQUIT\r\n"
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out").read_bytes() == (
        PAYLOAD + f"GOT {hashlib.sha256(sent).hexdigest()} {len(sent)}\n".encode()
    )
