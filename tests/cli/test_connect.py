"""``portkit connect`` as users run it: a subprocess with real stdin and stdout."""

from __future__ import annotations

import asyncio
import os
import pty
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from bench._netns import namespace

from portkit.client import listening_sockets
from tests.client.helpers import (
    echo_server,
    refused_port,
    self_signed_cert,
    server_tls_context,
    unanswered_port,
)

SRC = Path(__file__).resolve().parents[2] / "src"
ENV = {**os.environ, "PYTHONPATH": str(SRC)}


async def _spawn(
    *argv: str,
) -> tuple[
    asyncio.subprocess.Process, asyncio.StreamWriter, asyncio.StreamReader, asyncio.StreamReader
]:
    """Start ``portkit ARGV``; return it with its stdin, stdout and stderr pipes."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "portkit",
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=ENV,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    assert proc.stderr is not None
    return proc, proc.stdin, proc.stdout, proc.stderr


async def _portkit(*argv: str, stdin: bytes = b"") -> tuple[int, bytes, str]:
    """Run ``portkit`` with ``stdin`` (then end of file); return (status, stdout, stderr)."""
    proc, *_ = await _spawn(*argv)
    out, err = await proc.communicate(stdin)
    assert proc.returncode is not None
    return proc.returncode, out, err.decode()


async def test_host_port_half_close_and_the_why_on_stderr() -> None:
    async with echo_server() as server:
        status, out, err = await _portkit("connect", f"127.0.0.1:{server.port}", stdin=b"ab\n")
    assert status == 0
    assert out == b"HELLO\nAB\nBYE 3\n"  # BYE after end of file: the half-close arrived
    lines = err.splitlines()
    assert lines[0] == (
        f"portkit: connecting to 127.0.0.1:{server.port} with plain TCP; "
        f"port {server.port}: explicit in '127.0.0.1:{server.port}'"
    )
    assert lines[1] == f"portkit: connected to 127.0.0.1:{server.port}"
    assert "closed by the server, after our end of input: sent 3 bytes, received 15" in lines[2]


async def test_two_argument_form_and_quiet() -> None:
    async with echo_server() as server:
        status, out, err = await _portkit(
            "connect", "-q", "127.0.0.1", str(server.port), stdin=b"x\n"
        )
    assert (status, out, err) == (0, b"HELLO\nX\nBYE 2\n", "")


async def test_server_closing_first_ends_it_while_stdin_is_open() -> None:
    async with echo_server() as server:
        proc, stdin, stdout, stderr = await _spawn("connect", f"127.0.0.1:{server.port}")
        stdin.write(b"QUIT\n")
        await stdin.drain()
        out = await stdout.read()  # until portkit exits: stdin is still open
        err = await stderr.read()
        status = await proc.wait()
        stdin.close()
    assert status == 0
    assert out == b"HELLO\nBYE 5\n"
    assert "closed by the server: sent 5 bytes" in err.decode()


async def test_https_url_is_tls_by_convention(tmp_path: Path) -> None:
    cert, key = self_signed_cert(tmp_path)
    async with echo_server(tls=server_tls_context(cert, key)) as server:
        url = f"https://localhost:{server.port}/"
        status, out, err = await _portkit(
            "connect", url, "--cafile", str(cert), stdin=b"tls\nQUIT\n"
        )
    assert status == 0, err
    assert out == b"HELLO\nTLS\nBYE 9\n"
    assert "with TLS (by convention for https)" in err
    assert "overriding https's default 443" in err
    assert "certificate CN=localhost (self-signed)" in err


async def test_imaps_is_tls_by_convention_and_untrusted_is_one_line(tmp_path: Path) -> None:
    cert, key = self_signed_cert(tmp_path)
    async with echo_server(tls=server_tls_context(cert, key)) as server:
        status, out, err = await _portkit("connect", "-q", f"imaps://127.0.0.1:{server.port}")
    assert status == 1
    assert out == b""
    assert err.count("\n") == 1
    assert "tls handshake" in err
    assert "self-signed certificate" in err


async def test_tls_flag_and_insecure_on_host_port(tmp_path: Path) -> None:
    cert, key = self_signed_cert(tmp_path)
    async with echo_server(tls=server_tls_context(cert, key)) as server:
        status, out, err = await _portkit(
            "connect", "--tls", "--insecure", f"127.0.0.1:{server.port}", stdin=b"QUIT\n"
        )
    assert status == 0, err
    assert out == b"HELLO\nBYE 5\n"
    assert "with TLS (--tls)" in err


async def test_tls_to_a_plain_server_says_so() -> None:
    async with echo_server() as server:
        status, _, err = await _portkit("connect", "-q", f"https://127.0.0.1:{server.port}")
    assert status == 1
    assert "does not speak TLS on this port" in err


async def test_no_tls_overrides_the_convention() -> None:
    async with echo_server() as server:
        status, out, err = await _portkit(
            "connect", "--no-tls", f"https://127.0.0.1:{server.port}", stdin=b"q\n"
        )
    assert status == 0, err
    assert out == b"HELLO\nQ\nBYE 2\n"
    assert "with plain TCP (--no-tls)" in err


async def test_refused_exits_3_with_one_line() -> None:
    port = refused_port()
    status, out, err = await _portkit("connect", "-q", f"127.0.0.1:{port}")
    assert (status, out) == (3, b"")
    assert err == f"portkit: connection to 127.0.0.1:{port} refused: nothing listens there\n"


async def test_registry_port_is_explained() -> None:
    # tcpmux is port 1: nothing listens there on a test machine, so this is refused.
    assert listening_sockets(port=1, transports=("tcp",)).sockets == ()
    status, _, err = await _portkit("connect", "127.0.0.1", "tcpmux")
    assert status == 3
    assert "port 1: the registered port of service tcpmux" in err.splitlines()[0]


async def test_timeout_exits_4() -> None:
    with unanswered_port() as port:
        status, _, err = await _portkit(
            "connect", "-q", "--connect-timeout", "0.5", f"127.0.0.1:{port}"
        )
    assert status == 4
    assert err == f"portkit: no answer from 127.0.0.1:{port} within 0.5 s\n"


async def test_idle_timeout_exits_4() -> None:
    async with echo_server() as server:
        proc, stdin, stdout, stderr = await _spawn(
            "connect", "-q", "--idle-timeout", "0.5", f"127.0.0.1:{server.port}"
        )
        # stdin stays open and the server says nothing after its greeting: idle.
        out = await stdout.read()
        err = await stderr.read()
        status = await proc.wait()
        stdin.close()
    assert status == 4
    assert out == b"HELLO\n"
    assert err == f"portkit: no data to or from 127.0.0.1:{server.port} for 0.5 s\n".encode()


async def test_ctrl_c_exits_130_with_one_line() -> None:
    async with echo_server() as server:
        proc, stdin, stdout, stderr = await _spawn("connect", "-q", f"127.0.0.1:{server.port}")
        assert await stdout.readline() == b"HELLO\n"  # connected; stdin stays open
        proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(10):
            err = await stderr.read()
            status = await proc.wait()
        stdin.close()
    assert status == 130
    assert err == b"portkit: interrupted\n"


@pytest.mark.parametrize(
    ("argv", "quoted"),
    [
        (["127.0.0.1", "nosuchservice"], "nosuchservice"),
        (["127.0.0.1:0"], "port 0"),
        (["127.0.0.1:65536"], "65536"),
        (["127.0.0.1", "0"], "port 0"),
        (["127.0.0.1", "65536"], "65536"),
        (["http://[::1"], "http://[::1"),
        (["127.0.0.1:80", "--connect-timeout", "0"], "--connect-timeout"),
        (["https://127.0.0.1:1", "--cafile", "/nonexistent/ca.pem"], "/nonexistent/ca.pem"),
        (["https://127.0.0.1:1", "--cafile", "/dev/null"], "/dev/null"),
    ],
)
async def test_bad_input_exits_2_with_one_line(argv: list[str], quoted: str) -> None:
    status, out, err = await _portkit("connect", *argv)
    assert status == 2
    assert out == b""
    assert err.count("\n") == 1, err
    assert quoted in err


def _connect_inside(namespace: str, target: str) -> subprocess.CompletedProcess[str]:
    """Run ``portkit connect -q TARGET`` inside ``namespace``, stdin closed."""
    return subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            namespace,
            sys.executable,
            "-m",
            "portkit",
            "connect",
            "-q",
            target,
        ],
        capture_output=True,
        text=True,
        env=ENV,
        stdin=subprocess.DEVNULL,
        check=False,
        timeout=60,
    )


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create a network namespace")
def test_unreachable_exits_1_with_one_line() -> None:
    # A fresh network namespace has its loopback down: 127.0.0.1 is unreachable there.
    with namespace("pk-client-", loopback=False) as name:
        proc = _connect_inside(name, "127.0.0.1:80")
    assert proc.returncode == 1
    assert proc.stderr == (
        "portkit: cannot connect to 127.0.0.1:80: network is unreachable "
        "(no route to it from this machine)\n"
    )


async def test_terminal_input_and_ctrl_d_half_close() -> None:
    # A terminal (a pty here) is read like a pipe; ^D at the start of a line is its end
    # of input, which half-closes the connection like a pipe's end does.
    master, slave = pty.openpty()
    try:
        async with echo_server() as server:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "portkit",
                "connect",
                "-q",
                f"127.0.0.1:{server.port}",
                stdin=slave,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=ENV,
            )
            os.close(slave)
            slave = -1
            os.write(master, b"typed\n\x04")  # the terminal holds it until portkit reads
            out, err = await proc.communicate()
    finally:
        os.close(master)
        if slave != -1:
            os.close(slave)
    assert proc.returncode == 0, err
    assert out == b"HELLO\nTYPED\nBYE 6\n"


async def test_servername_verifies_another_name(tmp_path: Path) -> None:
    cert, key = self_signed_cert(tmp_path, name="mail.example")
    async with echo_server(tls=server_tls_context(cert, key)) as server:
        target = f"127.0.0.1:{server.port}"
        ok = await _portkit(
            "connect",
            "-q",
            "--tls",
            "--cafile",
            str(cert),
            "--servername",
            "mail.example",
            target,
            stdin=b"QUIT\n",
        )
        wrong = await _portkit(
            "connect",
            "-q",
            "--tls",
            "--cafile",
            str(cert),
            "--servername",
            "other.example",
            target,
        )
    assert ok == (0, b"HELLO\nBYE 5\n", "")
    assert wrong[0] == 1
    assert "other.example" in wrong[2]


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create a network namespace")
def test_unresolvable_name_exits_1_with_one_line() -> None:
    # Inside a fresh namespace (loopback down) whose resolv.conf names only 127.0.0.1,
    # the DNS query cannot leave: the name fails to resolve without any traffic.
    with namespace("pk-client-", loopback=False) as name:
        etc = Path("/etc/netns") / name  # `ip netns exec` bind-mounts files found here
        etc.mkdir(parents=True)
        try:
            (etc / "resolv.conf").write_text("nameserver 127.0.0.1\n", encoding="ascii")
            proc = _connect_inside(name, "nosuch.portkit.test:80")
        finally:
            shutil.rmtree(etc)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith("portkit: cannot resolve 'nosuch.portkit.test': ")
    assert proc.stderr.count("\n") == 1
