"""``portkit connect`` as netcat users expect it, against real peers: Python's http.server
and nginx (half-close), socat (UDP), plain sockets (listen mode, --crlf), aiosmtpd and
vsftpd (STARTTLS)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from portkit.client import free_ports
from tests._tls import self_signed_cert, server_tls_context

SRC = Path(__file__).resolve().parents[2] / "src"
ENV = {**os.environ, "PYTHONPATH": str(SRC)}
PORTKIT = [sys.executable, "-m", "portkit"]
READY_TIMEOUT = 20.0  # seconds a peer may take to start listening


def portkit(*argv: str, stdin: bytes = b"", timeout: float = 60) -> tuple[int, bytes, str]:
    """Run ``portkit ARGV`` with ``stdin`` then end of file; return (status, stdout, stderr)."""
    proc = subprocess.run(
        [*PORTKIT, *argv], input=stdin, capture_output=True, env=ENV, check=False, timeout=timeout
    )
    return proc.returncode, proc.stdout, proc.stderr.decode()


def _wait_for_tcp(port: int, proc: subprocess.Popen[bytes]) -> None:
    """Return once something accepts on 127.0.0.1:port (the peer's ready signal)."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the peer exited before listening"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listened on {port} within {READY_TIMEOUT} s")


@contextmanager
def _running(argv: list[str], port: int | None = None) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        if port is not None:
            _wait_for_tcp(port, proc)
        yield proc
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


# -- half-close: the client reads until the server closes ---------------------------


def test_readme_half_close_example_against_python_http_server(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<title>hi</title>\n", encoding="utf-8")
    port = free_ports()[0]
    server = [
        sys.executable,
        "-m",
        "http.server",
        "-b",
        "127.0.0.1",
        "-d",
        str(tmp_path),
        str(port),
    ]
    with _running(server, port):
        status, out, err = portkit(
            "connect", f"http://127.0.0.1:{port}", stdin=b"HEAD / HTTP/1.0\r\n\r\n"
        )
    assert status == 0, err
    assert out.startswith(b"HTTP/1.0 200 OK\r\n")
    assert b"Content-Length: 18\r\n" in out
    assert "closed by the server, after our end of input: sent 19 bytes" in err


def test_half_close_against_nginx(tmp_path: Path) -> None:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        pytest.skip("needs nginx (Debian package nginx)")
    if os.geteuid() != 0:
        pytest.skip("needs root: Debian's nginx writes its error log under /var/log first")
    port = free_ports()[0]
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "index.html").write_text("hello from nginx\n", encoding="utf-8")
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        f"user root;\npid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\n"
        "worker_processes 1;\nevents {}\n"
        f"http {{ access_log off; client_body_temp_path {tmp_path}/body;\n"
        f"  server {{ listen 127.0.0.1:{port}; root {tmp_path}/www; }} }}\n",
        encoding="utf-8",
    )
    with _running([nginx, "-c", str(conf), "-g", "daemon off;"], port):
        status, out, err = portkit(
            "connect", "-q", f"127.0.0.1:{port}", stdin=b"GET / HTTP/1.0\r\n\r\n"
        )
    assert status == 0, err
    assert out.startswith(b"HTTP/1.1 200 OK\r\n")
    assert out.endswith(b"\r\n\r\nhello from nginx\n")


# -- UDP -------------------------------------------------------------------------


@contextmanager
def _udp_echo() -> Iterator[int]:
    """socat echoing every datagram on 127.0.0.1, in a child process; yield its port."""
    if shutil.which("socat") is None:
        pytest.skip("needs socat (Debian package socat)")
    port = free_ports(transport="udp")[0]
    argv = ["socat", f"UDP4-RECVFROM:{port},bind=127.0.0.1,fork", "EXEC:cat"]
    with _running(argv) as proc:
        deadline = time.monotonic() + READY_TIMEOUT
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.settimeout(0.2)
        try:
            while True:  # ready once it echoes
                assert proc.poll() is None, "socat exited"
                assert time.monotonic() < deadline, "socat did not start"
                probe.sendto(b"ready?", ("127.0.0.1", port))
                try:
                    if probe.recvfrom(100)[0] == b"ready?":
                        break
                except OSError:
                    continue
        finally:
            probe.close()
        yield port


@pytest.mark.parametrize(
    "argv",
    [
        ["udp://127.0.0.1:{port}"],
        ["127.0.0.1:{port}/udp"],
        ["--udp", "127.0.0.1:{port}"],
        ["-u", "127.0.0.1", "{port}"],
    ],
)
def test_udp_gets_the_echo(argv: list[str]) -> None:
    with _udp_echo() as port:
        status, out, err = portkit("connect", *(a.format(port=port) for a in argv), stdin=b"hi\n")
    assert status == 0, err
    assert out == b"hi\n"
    assert f"sending to 127.0.0.1:{port} over UDP" in err
    assert "sent 3 bytes, received 3" in err


def test_udp_refused_exits_3() -> None:
    port = free_ports(transport="udp")[0]  # free: nothing listens, the kernel answers ICMP
    status, out, err = portkit("connect", "-q", f"udp://127.0.0.1:{port}", stdin=b"hi\n")
    assert (status, out) == (3, b"")
    assert err == (
        f"portkit: udp datagrams to 127.0.0.1:{port} refused: "
        "nothing listens there (ICMP port unreachable)\n"
    )


# -- listen mode -----------------------------------------------------------------


def _finish(proc: subprocess.Popen[bytes]) -> tuple[bytes, bytes]:
    """Wait for ``proc`` (its stdin already closed); return its stdout and stderr."""
    assert proc.stdout is not None
    assert proc.stderr is not None
    out, err = proc.stdout.read(), proc.stderr.read()  # small: no pipe can fill up
    proc.wait(timeout=30)
    proc.stdout.close()
    proc.stderr.close()
    return out, err


def _listening(argv: list[str], stdin: bytes) -> tuple[subprocess.Popen[bytes], tuple[str, int]]:
    """Start ``portkit connect ARGV`` in listen mode; return it and the address it reports."""
    proc = subprocess.Popen(
        [*PORTKIT, "connect", *argv],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=ENV,
    )
    assert proc.stderr is not None
    assert proc.stdin is not None
    line = proc.stderr.readline().decode()  # the ready signal: "listening on ADDR:PORT"
    assert line.startswith("portkit: listening on "), line
    where = line.split()[3]
    host, _, port = where.rpartition(":")
    proc.stdin.write(stdin)
    proc.stdin.close()
    return proc, (host.strip("[]"), int(port))


@pytest.mark.parametrize(("bind", "family"), [(None, socket.AF_INET), ("::1", socket.AF_INET6)])
def test_listen_tcp_talks_with_one_peer(bind: str | None, family: socket.AddressFamily) -> None:
    extra = [] if bind is None else ["--bind", bind]
    proc, (host, port) = _listening(["-l", "0", *extra], stdin=b"pong\n")
    assert host == (bind or "127.0.0.1")
    with socket.socket(family, socket.SOCK_STREAM) as peer:
        peer.settimeout(30)
        peer.connect((host, port))
        peer.sendall(b"ping\n")
        received = b""
        while chunk := peer.recv(100):  # until portkit half-closes after its stdin's end
            received += chunk
    out, err = _finish(proc)
    assert received == b"pong\n"
    assert proc.returncode == 0, err
    assert out == b"ping\n"
    assert b"connection from" in err


def test_listen_udp_answers_the_first_sender() -> None:
    proc, (host, port) = _listening(["-l", "0/udp"], stdin=b"pong\n")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
        peer.settimeout(30)
        peer.sendto(b"ping\n", (host, port))
        reply, sender = peer.recvfrom(100)
    out, err = _finish(proc)
    assert (reply, sender) == (b"pong\n", (host, port))
    assert proc.returncode == 0, err
    assert out == b"ping\n"
    assert b"first datagram from 127.0.0.1:" in err


def test_listen_on_a_port_in_use_is_one_line() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        status, out, err = portkit("connect", "-l", str(port))
    assert (status, out) == (1, b"")
    assert err == (
        f"portkit: cannot listen on 127.0.0.1:{port}: address already in use "
        f"(see who holds it: portkit listening --port {port})\n"
    )


# -- --crlf ----------------------------------------------------------------------


def test_crlf_sends_each_line_end_as_crlf() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        proc = subprocess.Popen(
            [*PORTKIT, "connect", "-q", "--crlf", f"127.0.0.1:{port}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=ENV,
        )
        conn, _ = server.accept()
        with conn:
            conn.settimeout(30)
            assert proc.stdin is not None
            proc.stdin.write(b"EHLO a\nMAIL x\r\nlast")
            proc.stdin.close()
            received = b""
            while chunk := conn.recv(100):  # until the half-close
                received += chunk
        _, err = _finish(proc)
    assert received == b"EHLO a\r\nMAIL x\r\nlast"
    assert proc.returncode == 0, err


# -- STARTTLS --------------------------------------------------------------------


def test_starttls_smtp_against_aiosmtpd(tmp_path: Path) -> None:
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Sink

    cert, key = self_signed_cert(tmp_path)
    port = free_ports()[0]
    controller = Controller(
        Sink(),
        hostname="127.0.0.1",
        port=port,
        tls_context=server_tls_context(cert, key),
        require_starttls=True,
    )
    controller.start()
    try:
        status, out, err = portkit(
            "connect",
            "--starttls",
            "smtp",
            "--crlf",
            "--cafile",
            str(cert),
            "--servername",
            "localhost",
            f"127.0.0.1:{port}",
            stdin=b"EHLO client.example\nQUIT\n",
        )
    finally:
        controller.stop()
    assert status == 0, err
    lines = out.decode().splitlines()
    assert lines[0].startswith("250-")  # EHLO again, now over TLS
    assert not any("STARTTLS" in line for line in lines)  # no longer offered: TLS is on
    assert lines[-1].startswith("221")
    assert "smtp starttls: the server said '220 Ready to start TLS'; TLS started" in err
    assert "certificate CN=localhost (self-signed)" in err


@pytest.fixture
def vsftpd_tls(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """vsftpd with AUTH TLS on a loopback port; yield (port, its certificate)."""
    if not Path("/usr/sbin/vsftpd").exists():
        pytest.skip("needs vsftpd (Debian package vsftpd)")
    if os.geteuid() != 0:
        pytest.skip("needs root: vsftpd runs as root and drops to user ftp")
    state = tmp_path / "vsftpd"
    (state / "empty").mkdir(parents=True)
    (state / "ftp").mkdir()
    for path in (tmp_path, state, state / "empty", state / "ftp"):
        path.chmod(0o755)
    cert, key = self_signed_cert(state)
    port = free_ports()[0]
    conf = state / "vsftpd.conf"
    conf.write_text(
        "listen=YES\nlisten_ipv6=NO\nlisten_address=127.0.0.1\n"
        f"listen_port={port}\nbackground=NO\nanonymous_enable=YES\nno_anon_password=YES\n"
        f"anon_root={state}/ftp\nlocal_enable=NO\nwrite_enable=NO\nftp_username=ftp\n"
        f"nopriv_user=nobody\nsecure_chroot_dir={state}/empty\n"
        f"ssl_enable=YES\nallow_anon_ssl=YES\nrsa_cert_file={cert}\nrsa_private_key_file={key}\n",
        encoding="utf-8",
    )
    with _running(["/usr/sbin/vsftpd", str(conf)], port):
        yield port, cert


def test_starttls_ftp_against_vsftpd(vsftpd_tls: tuple[int, Path]) -> None:
    port, cert = vsftpd_tls
    status, out, err = portkit(
        "connect",
        "--starttls",
        "ftp",
        "--crlf",
        "--cafile",
        str(cert),
        f"localhost:{port}",
        stdin=b"USER anonymous\nSYST\nQUIT\n",
    )
    assert status == 0, err
    assert out.decode().splitlines()[-2:] == ["215 UNIX Type: L8", "221 Goodbye."]
    assert "ftp starttls: the server said '234 Proceed with negotiation.'" in err
    assert ", TLSv1." in err


def test_starttls_against_a_server_that_is_not_smtp() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        proc = subprocess.Popen(
            [*PORTKIT, "connect", "-q", "--starttls", "smtp", f"127.0.0.1:{port}"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=ENV,
        )
        conn, _ = server.accept()
        with conn:
            conn.sendall(b"SSH-2.0-OpenSSH_9.2p1\r\n")
            out, err = proc.communicate(timeout=30)
    assert (proc.returncode, out) == (1, b"")
    assert err.decode() == (
        "portkit: smtp starttls: the server sent 'SSH-2.0-OpenSSH_9.2p1', not a smtp reply\n"
    )


# -- bad input -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "quoted"),
    [
        (["-l", "0", "127.0.0.1:80"], "'127.0.0.1:80'"),
        (["--bind", "::1", "127.0.0.1:80"], "--bind '::1'"),
        (["--starttls", "nntp", "127.0.0.1:80"], "'nntp'"),
        (["--tls", "--starttls", "smtp", "127.0.0.1:25"], "--starttls"),
        (["--udp", "--tls", "127.0.0.1:53"], "DTLS"),
        (["--starttls", "imap", "udp://127.0.0.1:143"], "DTLS"),
        (["--starttls", "imap", "imaps://127.0.0.1"], "imaps"),
        (["-l", "70000"], "port must be 0-65535, not 70000"),
        (["-l", "0/tcp", "--udp"], "'0/tcp'"),
        (["-l", "0", "--tls"], "--tls"),
        (["-l", "0", "--bind", "192.0.2.1"], "'192.0.2.1'"),
        (["udp://127.0.0.1"], "udp://127.0.0.1"),
        ([], "TARGET"),
    ],
)
def test_bad_input_exits_2_with_one_line(argv: list[str], quoted: str) -> None:
    status, out, err = portkit("connect", *argv)
    assert (status, out) == (2, b""), err
    assert err.count("\n") == 1, err
    assert quoted in err
