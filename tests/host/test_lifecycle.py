"""`portkit serve` as a process: readiness, status, SIGTERM and SIGHUP under load,
socket activation, privilege drop."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from portkit.cli import main
from tests.host._helpers import SRC, ServeProcess, addresses, poll_status, show_status

BIG = 16 * 1024 * 1024


def write_config(tmp: Path, apps: dict[str, dict[str, Any]], grace: float = 10.0) -> Path:
    lines = [f"[host]\ngrace = {grace}\n"]
    for name, table in apps.items():
        lines.append(f"[apps.{name}]")
        lines.extend(f"{key} = {json.dumps(value)}" for key, value in table.items())
        lines.append("")
    path = tmp / "serve.toml"
    path.write_text("\n".join(lines))
    return path


def site(tmp: Path) -> Path:
    root = tmp / "public"
    root.mkdir(exist_ok=True)
    (root / "small.txt").write_bytes(b"x" * 1000)
    (root / "big.bin").write_bytes(hashlib.sha256(b"seed").digest() * (BIG // 32))
    return root


def echo_app(port: int = 0) -> dict[str, Any]:
    return {"kind": "echo", "listen": f"127.0.0.1:{port}"}


async def echo_round_trip(address: tuple[str, int], payload: bytes = b"ping\n") -> bytes:
    reader, writer = await asyncio.open_connection(*address)
    writer.write(payload)
    data = await reader.readexactly(len(payload))
    writer.close()
    await writer.wait_closed()
    return data


def test_ready_via_notify_socket_ready_file_and_status(tmp_path: Path) -> None:
    site(tmp_path)
    config = write_config(
        tmp_path,
        {
            "web": {"kind": "web", "listen": ["127.0.0.1:0", "[::1]:0"], "root": "public"},
            "echo": echo_app(),
        },
    )
    with ServeProcess(config, tmp_path) as serve:
        doc = serve.start()
        assert serve.proc is not None
        assert doc["pid"] == serve.proc.pid
        assert [a["name"] for a in doc["apps"]] == ["web", "echo"]
        web = addresses(doc, "web")
        assert [h for h, _ in web] == ["127.0.0.1", "::1"]
        assert all(port > 0 for _, port in web)
        assert "ready: 2 applications on 3 listeners" in serve.stderr()
        assert asyncio.run(echo_round_trip(addresses(doc, "echo")[0])) == b"ping\n"
        # The status file is rewritten every second; wait for the connection to show.
        status_file = tmp_path / "status.json"
        counters = poll_status(status_file, "echo", lambda c: c["connections_total"] == 1)
        assert counters["bytes_in"] == counters["bytes_out"] == 5
        out = show_status(status_file)
        assert "APP" in out.splitlines()[1]
        assert any(line.split()[:2] == ["echo", "echo"] for line in out.splitlines())
        serve.signal(signal.SIGTERM)
        assert serve.wait() == 0
    assert not status_file.exists()
    assert main(["serve", "--status", "--status-file", str(status_file)]) == 1


async def download(session: aiohttp.ClientSession, url: str) -> bytes:
    async with session.get(url) as response:
        assert response.status == 200
        return await response.read()


def test_sigterm_under_load_loses_no_completed_response(tmp_path: Path) -> None:
    root = site(tmp_path)
    small, big = (root / "small.txt").read_bytes(), (root / "big.bin").read_bytes()
    config = write_config(
        tmp_path, {"web": {"kind": "web", "listen": "127.0.0.1:0", "root": "public"}}
    )
    with ServeProcess(config, tmp_path) as serve:
        host, port = addresses(serve.start(), "web")[0]
        base = f"http://{host}:{port}"
        completed, refused, lost = asyncio.run(_sigterm_load(serve, base, small, big))
        assert serve.wait() == 0
    assert completed > 50
    # Every request begun before SIGTERM either completed whole and correct (checked
    # inside _sigterm_load) or was refused at connect, after the listener closed. A
    # connection of such a request that was accepted and then closed or reset without a
    # whole response is a lost request. (One begun after SIGTERM may meet the listener
    # as it closes, and the kernel resets a handshake it completed then: as with nginx,
    # such a client tries again and is refused.)
    assert lost == [], f"{len(lost)} accepted requests lost ({refused} refused): {lost[:3]}"


async def _sigterm_load(
    serve: ServeProcess, base: str, small: bytes, big: bytes
) -> tuple[int, int, list[str]]:
    completed = refused = 0
    lost: list[str] = []
    stop, warmed_up = asyncio.Event(), asyncio.Event()
    signalled = asyncio.Event()  # set just before SIGTERM is sent
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal completed, refused
            for _ in range(400):  # bounded
                if stop.is_set():
                    return
                begun_after_signal = signalled.is_set()
                try:
                    body = await download(session, base + "/small.txt")
                except aiohttp.ClientConnectorError:
                    refused += 1  # the connect itself failed: the listener was closed
                    stop.set()
                    return
                except aiohttp.ClientError as exc:
                    if begun_after_signal:
                        refused += 1  # met the listener as it closed
                    else:
                        lost.append(repr(exc))  # connected before, then no whole response
                    stop.set()
                    return
                assert body == small  # a response that arrived is complete
                completed += 1
                if completed >= 60:
                    warmed_up.set()

        # An in-flight large download, begun before SIGTERM, must finish within grace.
        async with session.get(base + "/big.bin") as big_response:
            first = await big_response.content.readexactly(65536)
            workers = [asyncio.create_task(worker()) for _ in range(20)]
            await warmed_up.wait()
            signalled.set()
            serve.signal(signal.SIGTERM)
            rest = await big_response.read()
        assert first + rest == big
        await asyncio.gather(*workers)
    return completed, refused, lost


def test_sighup_reload_under_load_keeps_unchanged_connections(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"keep": echo_app(), "old": echo_app()})
    with ServeProcess(config, tmp_path) as serve:
        doc = serve.start()
        keep, old = addresses(doc, "keep")[0], addresses(doc, "old")[0]
        result = asyncio.run(_reload_under_load(serve, config, keep, old, tmp_path))
        assert result["kept_round_trips"] > 0
        err = serve.stderr()
        assert "reloaded: 1 started, 1 stopped, 0 restarted, 1 unchanged" in err
        assert "reload: [apps.old] stopped (no longer configured)" in err
        assert "reload: [apps.new] started (echo on 127.0.0.1:" in err
        serve.signal(signal.SIGTERM)
        assert serve.wait() == 0


async def _reload_under_load(
    serve: ServeProcess, config: Path, keep: tuple[str, int], old: tuple[str, int], tmp: Path
) -> dict[str, int]:
    # Long-lived connections to the unchanged application, used before, during and after.
    conns = [await asyncio.open_connection(*keep) for _ in range(20)]
    rounds = 0

    async def use(conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], tag: int) -> None:
        nonlocal rounds
        reader, writer = conn
        for i in range(30):  # bounded
            line = f"{tag}:{i}\n".encode()
            writer.write(line)
            assert await reader.readline() == line  # never dropped
            rounds += 1
            await asyncio.sleep(0.005)

    users = [asyncio.create_task(use(c, n)) for n, c in enumerate(conns)]
    write_config(tmp, {"keep": echo_app(), "new": echo_app()})  # keep: as before
    serve.signal(signal.SIGHUP)
    await asyncio.to_thread(serve.wait_notify, "RELOADING=1")
    await asyncio.to_thread(serve.wait_notify, "READY=1")
    await asyncio.gather(*users)
    status = json.loads((tmp / "status.json").read_text())
    assert [a["name"] for a in status["apps"]] == ["keep", "new"]
    assert await echo_round_trip(addresses(status, "new")[0]) == b"ping\n"
    assert addresses(status, "keep")[0] == keep
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection(*old)
    for _reader, writer in conns:
        writer.close()
        await writer.wait_closed()
    return {"kept_round_trips": rounds}


def test_bad_reload_is_rejected_and_the_old_config_keeps_running(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"echo": echo_app()})
    with ServeProcess(config, tmp_path) as serve:
        echo = addresses(serve.start(), "echo")[0]
        config.write_text(
            config.read_text() + "\n[apps.bad]\nkind = 'echo'\nlisten = '127.0.0.1:99999'\n"
        )
        serve.signal(signal.SIGHUP)
        fields = serve.wait_notify("READY=1")
        assert "STATUS=reload rejected" in fields
        assert "port must be 0-65535, not 99999" in serve.stderr()
        assert asyncio.run(echo_round_trip(echo)) == b"ping\n"
        serve.signal(signal.SIGTERM)
        assert serve.wait() == 0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.skipif(
    not shutil.which("systemd-socket-activate"), reason="needs systemd-socket-activate"
)
def test_socket_activation_with_systemd_socket_activate(tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path, {"echo": echo_app(port)})
    notify = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(notify))
        listener.settimeout(30)
        proc = subprocess.Popen(
            [
                "systemd-socket-activate",
                "-l",
                f"127.0.0.1:{port}",
                "--fdname=echo",
                "-E",
                f"PYTHONPATH={SRC}",
                "-E",
                f"NOTIFY_SOCKET={notify}",
                sys.executable,
                "-m",
                "portkit",
                "serve",
                str(config),
                "--status-file",
                str(tmp_path / "status.json"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            # systemd-socket-activate binds first ("Listening on ..."), then starts portkit
            # on the first connection; ours waits in the inherited socket's backlog.
            assert proc.stderr is not None
            said = b""
            while b"Listening on" not in said:
                line = proc.stderr.readline()
                assert line, f"systemd-socket-activate ended: {said!r}"
                said += line
            with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
                client.sendall(b"activated\n")
                assert client.recv(100) == b"activated\n"
            assert b"READY=1" in listener.recv(4096)
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
            assert proc.returncode == 0
            assert b"uses inherited socket 127.0.0.1:%d (echo)" % port in err
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


def test_socket_activation_by_name_with_fds_we_pass(tmp_path: Path) -> None:
    """LISTEN_FDNAMES: an fd named after an application serves it, whatever its address."""
    config = write_config(tmp_path, {"echo": echo_app(free_port())})
    with socket.create_server(("127.0.0.1", 0)) as passed:
        port = passed.getsockname()[1]
        os.set_inheritable(passed.fileno(), True)
        # The fd must be 3 in the child (SD_LISTEN_FDS_START) and LISTEN_PID its pid: a
        # small trampoline moves it and sets the variables, then execs portkit (same pid).
        trampoline = (
            "import os, sys\n"
            f"os.dup2({passed.fileno()}, 3)\n"
            f"os.close({passed.fileno()})\n"
            "os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS='1', LISTEN_FDNAMES='echo')\n"
            "os.execv(sys.executable, [sys.executable, '-m', 'portkit', *sys.argv[1:]])\n"
        )
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                trampoline,
                "serve",
                str(config),
                "--status-file",
                str(tmp_path / "status.json"),
            ],
            env={**os.environ, "PYTHONPATH": str(SRC)},
            pass_fds=(passed.fileno(),),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
                client.sendall(b"by name\n")
                try:
                    assert client.recv(100) == b"by name\n"
                except TimeoutError:
                    proc.kill()
                    raise AssertionError(proc.communicate()[1]) from None
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
            assert proc.returncode == 0, err
            assert b"uses inherited socket" in err
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: dropping privileges")
def test_root_drops_privileges_after_binding_a_low_port() -> None:
    # The dropped-to user must reach the notify socket and write the status files.
    tmp = Path(tempfile.mkdtemp(prefix="pk-host-"))
    try:
        tmp.chmod(0o777)
        config = tmp / "serve.toml"
        config.write_text(
            '[host]\nuser = "nobody"\n'
            '[apps.whoami]\nkind = "exec"\nlisten = "127.0.0.1:1"\nargv = ["/usr/bin/id", "-u"]\n'
        )
        with ServeProcess(config, tmp, world_writable=True) as serve:
            doc = serve.start()
            assert addresses(doc, "whoami") == [("127.0.0.1", 1)]
            with socket.create_connection(("127.0.0.1", 1), timeout=30) as client:
                uid = b""
                while chunk := client.recv(100):
                    uid += chunk
            assert uid.strip() == b"65534"
            assert "dropped privileges to user nobody" in serve.stderr()
            serve.signal(signal.SIGTERM)
            assert serve.wait() == 0
    finally:
        shutil.rmtree(tmp)


def test_nothing_is_imported_once_serving(tmp_path: Path) -> None:
    # After a privilege drop, a module the new user cannot read can no longer be imported;
    # so every module serving needs is imported before. Python reports each import as it
    # happens (PYTHONPROFILEIMPORTTIME): none may come after "ready".
    root = site(tmp_path)
    (root / "sub").mkdir()
    config = write_config(
        tmp_path,
        {
            "web": {"kind": "web", "listen": "127.0.0.1:0", "root": "public", "listing": True},
            "tls": {"kind": "web", "listen": "127.0.0.1:0", "root": "public", "tls": True},
            "tv": {"kind": "video", "listen": "127.0.0.1:0", "root": "public"},
            "echo": echo_app(),
            "run": {"kind": "exec", "listen": "127.0.0.1:0", "argv": ["/bin/echo", "hi"]},
        },
    )
    with ServeProcess(config, tmp_path, env={"PYTHONPROFILEIMPORTTIME": "1"}) as serve:
        doc = serve.start()
        echo_port = addresses(doc, "echo")[0][1]
        # forward to a host *name*: getaddrinfo's IDNA codec is a lazy import
        text = config.read_text() + (
            f'[apps.fwd]\nkind = "forward"\nlisten = "127.0.0.1:0"\nto = "localhost:{echo_port}"\n'
        )
        config.write_text(text)
        serve.signal(signal.SIGHUP)
        serve.wait_notify("READY=1")
        status = json.loads((tmp_path / "status.json").read_text())
        web, tls, tv = (addresses(doc, name)[0] for name in ("web", "tls", "tv"))
        for args in (
            [f"http://127.0.0.1:{web[1]}/small.txt"],
            [f"http://127.0.0.1:{web[1]}/sub/"],
            [f"http://127.0.0.1:{web[1]}/missing"],
            ["-H", "Range: bytes=0-1,5-9", f"http://127.0.0.1:{web[1]}/small.txt"],
            ["-k", f"https://127.0.0.1:{tls[1]}/small.txt"],
            [f"http://127.0.0.1:{tv[1]}/"],
        ):
            done = subprocess.run(
                ["curl", "-sS", "--max-time", "20", "-o", "/dev/null", "-w", "%{http_code}", *args],
                capture_output=True,
                check=True,
            )
            assert done.stdout in (b"200", b"206", b"404"), (args, done.stdout)
        assert asyncio.run(echo_round_trip(addresses(status, "fwd")[0])) == b"ping\n"
        with socket.create_connection(addresses(doc, "run")[0], timeout=20) as client:
            assert client.recv(10) == b"hi\n"
        time.sleep(0.5)  # the last connections end and are logged
        serve.signal(signal.SIGTERM)
        assert serve.wait() == 0
        log = serve.stderr()
    served = log.split("ready:", 1)[1].split("SIGTERM", 1)[0]
    late = [line for line in served.splitlines() if line.startswith("import time:")]
    assert late == [], late


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: dropping privileges")
def test_keys_only_root_can_read_are_loaded_before_the_drop() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="pk-host-"))
    try:
        tmp.chmod(0o777)
        site(tmp)
        private = tmp / "private"
        private.mkdir(mode=0o700)  # like /etc/ssl/private
        from portkit.host._tls import self_signed_pem

        cert_pem, key_pem = self_signed_pem()
        (private / "site.pem").write_bytes(cert_pem + key_pem)
        config = tmp / "serve.toml"
        config.write_text(
            '[host]\nuser = "nobody"\n'
            '[apps.site]\nkind = "web"\nlisten = "127.0.0.1:0"\nroot = "public"\n'
            'tls = true\ncert = "private/site.pem"\n'
        )
        with ServeProcess(config, tmp, world_writable=True) as serve:
            doc = serve.start()
            port = addresses(doc, "site")[0][1]
            done = subprocess.run(
                ["curl", "-sSk", "--max-time", "20", f"https://127.0.0.1:{port}/small.txt"],
                capture_output=True,
                check=True,
            )
            assert done.stdout == b"x" * 1000
            assert "dropped privileges to user nobody" in serve.stderr()
            serve.signal(signal.SIGTERM)
            assert serve.wait() == 0
    finally:
        shutil.rmtree(tmp)


def test_what_an_application_logs_names_the_application(tmp_path: Path) -> None:
    program = ["/bin/sh", "-c", "echo 'cannot open the widget' >&2"]
    config = tmp_path / "serve.toml"
    config.write_text(
        f'[apps.widget]\nkind = "exec"\nlisten = "127.0.0.1:0"\nargv = {json.dumps(program)}\n'
    )
    with ServeProcess(config, tmp_path) as serve:
        address = addresses(serve.start(), "widget")[0]
        with socket.create_connection(address, timeout=20) as conn:
            assert conn.recv(100) == b""  # the program ended, the connection with it
        serve.signal(signal.SIGTERM)
        assert serve.wait() == 0
    lines = [line for line in serve.stderr().splitlines() if "cannot open the widget" in line]
    assert len(lines) == 1
    assert lines[0].startswith("portkit serve: [apps.widget] 127.0.0.1:"), lines


def test_log_lines_count_in_words() -> None:
    from portkit.host._host import _count

    assert _count(1, "application") == "1 application"
    assert _count(0, "listener") == "0 listeners"
    assert _count(3, "listener") == "3 listeners"
