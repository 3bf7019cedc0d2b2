"""Worker processes: one web application served by several processes, as by one.

Real hosts on loopback: limits counted across the workers (clients from many 127.0.0.x
sources), counters and the access log merged, TLS with one certificate, and the life of
the processes (restart after a kill, reload as a group, stop, no orphans).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from portkit.host._config import parse_config
from portkit.host._host import BindError, Host
from portkit.host._limits import Admission, AdmissionTable, SharedAdmission, Slot
from portkit.host._tls import self_signed_pem
from tests.host._helpers import ServeProcess, addresses, eventually, running_host, show_status, url

SOURCES = 16  # client addresses 127.0.0.1 .. 127.0.0.16


def site(base: Path) -> Path:
    root = base / "public"
    root.mkdir()
    (root / "small.txt").write_bytes(b"small and served\n")
    with (root / "big.bin").open("wb") as fh:
        fh.truncate(16 * 1024 * 1024)  # sparse
    return root


def web(**options: object) -> str:
    extra = "".join(f"{key} = {value}\n" for key, value in options.items())
    return f'[apps.site]\nkind = "web"\nlisten = "127.0.0.1:0"\nroot = "public"\n{extra}'


def children(pid: int) -> set[int]:
    """The process ids whose parent is ``pid`` (zombies included)."""
    out = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                if int(stat.rpartition(")")[2].split()[1]) == pid:
                    out.add(int(entry))
    return out


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def wait_until(condition: object, what: str, timeout: float = 20.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached in {timeout}s: {what}")
        time.sleep(0.02)


# -- the shared admission table, against one Admission as the oracle --------------------


def test_shared_admission_decides_as_one_admission_would() -> None:
    rng = random.Random(16)
    oracle = Admission(12, 3)
    table = AdmissionTable(12, 3, workers=3)
    views = [SharedAdmission(table, w) for w in range(3)]
    hosts = [f"127.0.0.{i}" for i in range(1, 9)] + ["2001:db8::1", "2001:db8::2", "::ffff:1.2.3.4"]
    held: list[tuple[Slot, Slot]] = []
    try:
        for _ in range(3000):
            if held and rng.random() < 0.45:
                expected, got = held.pop(rng.randrange(len(held)))
                expected.release()
                got.release()
            else:
                host = rng.choice(hosts)
                expected_slot = oracle.admit(host)
                slot = rng.choice(views).admit(host)
                assert (slot is None) == (expected_slot is None), host
                assert views[0].refusal(host) == oracle.refusal(host)
                if slot is not None and expected_slot is not None:
                    held.append((expected_slot, slot))
            assert views[1].open == oracle.open
            assert all(views[2].held_by(h) == oracle.held_by(h) for h in hosts)
        # 2001:db8::1 and ::2 are one /64: one source; ::ffff:1.2.3.4 counts as 1.2.3.4.
        assert views[0].held_by("2001:db8::1") == views[0].held_by("2001:db8::2")
    finally:
        table.close()


def test_a_dead_workers_connections_are_forgotten() -> None:
    table = AdmissionTable(4, 2, workers=2)
    try:
        first, second = SharedAdmission(table, 0), SharedAdmission(table, 1)
        assert first.admit("127.0.0.5") is not None
        assert second.admit("127.0.0.5") is not None
        assert first.admit("127.0.0.6") is not None
        assert second.admit("127.0.0.5") is None  # two from 127.0.0.5 already
        table.forget(0)  # worker 0 died with its connections
        assert second.held_by("127.0.0.5") == 1
        assert second.open == 1
        assert second.admit("127.0.0.5") is not None
    finally:
        table.close()


# -- a host with two workers ---------------------------------------------------------------


def server_sockets(port: int) -> dict[str, list[int]]:
    """Source address -> pids of the processes holding an accepted connection on ``port``."""
    out = subprocess.run(
        ["ss", "-tnpH", "state", "established", f"( sport = :{port} )"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    held: dict[str, list[int]] = {}
    for line in out.splitlines():
        fields = line.split()
        peer = fields[3].rpartition(":")[0]
        pid = re.search(r"pid=(\d+)", line)
        assert pid is not None, line
        held.setdefault(peer, []).append(int(pid.group(1)))
    return held


@contextlib.contextmanager
def clients(address: tuple[str, int], per_source: int) -> Iterator[list[socket.socket]]:
    """``per_source`` connections from each of SOURCES loopback addresses (no request)."""
    socks = []
    try:
        for n in range(1, SOURCES + 1):
            for _ in range(per_source):
                sock = socket.socket()
                socks.append(sock)
                sock.bind((f"127.0.0.{n}", 0))
                sock.connect(address)
        yield socks
    finally:
        for sock in socks:
            sock.close()


async def test_per_source_limit_is_exact_across_workers(tmp_path: Path) -> None:
    site(tmp_path)
    text = web(workers=2, per_source=2, max_connections=1000, header_timeout=60)
    async with running_host(text, tmp_path) as host:
        workers = host.status()["apps"][0]["workers"]
        assert len(workers) == 2
        port = host.bound("site")[0][1]
        with clients(host.bound("site")[0], 3):
            app = host.apps["site"]
            await eventually(
                lambda: (
                    app.counters.rejected == SOURCES
                    and app.counters.connections_open == 2 * SOURCES
                ),
                "one connection of three refused per source",
            )
            held = server_sockets(port)
        assert {f"127.0.0.{n}" for n in range(1, SOURCES + 1)} == set(held)
        assert all(len(pids) == 2 for pids in held.values()), held
        assert {pid for pids in held.values() for pid in pids} == set(workers)
        # Not by steering one source to one worker: sources were split between them, and
        # the count still held.
        assert any(len(set(pids)) == 2 for pids in held.values()), held


async def test_max_connections_is_exact_across_workers(tmp_path: Path) -> None:
    site(tmp_path)
    text = web(workers=2, max_connections=10, per_source=10, header_timeout=60)
    async with running_host(text, tmp_path) as host:
        with clients(host.bound("site")[0], 1):
            app = host.apps["site"]
            await eventually(
                lambda: (
                    app.counters.connections_open == 10 and app.counters.rejected == SOURCES - 10
                ),
                "ten connections served, the others refused",
            )
            held = server_sockets(host.bound("site")[0][1])
        assert sum(len(pids) for pids in held.values()) == 10


async def test_counters_and_access_log_are_merged(tmp_path: Path) -> None:
    site(tmp_path)
    log = tmp_path / "access.log"
    text = web(workers=2, access_log=f'"{log}"', access_log_format='"combined"')
    agent = "x" * 8000  # with the referer, a line twice a buffered stream's buffer
    async with running_host(text, tmp_path) as host:
        base = url(host, "site")
        connector = aiohttp.TCPConnector(force_close=True, limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def fetch(n: int) -> None:
                headers = {"User-Agent": f"{n}-{agent}", "Referer": agent}
                async with session.get(base + "small.txt", headers=headers) as response:
                    assert await response.read() == b"small and served\n"

            await asyncio.gather(*(fetch(n) for n in range(200)))
        app = host.apps["site"]
        await eventually(lambda: app.counters.connections_total == 200, "200 connections counted")
        snap = app.counters.snapshot()
        assert snap.bytes_in > 200 * 16000
        assert snap.bytes_out > 200 * len(b"small and served\n")
        await eventually(lambda: log.read_text().count("\n") == 200, "200 access-log lines")
    lines = log.read_text().splitlines()
    pattern = re.compile(
        r'^127\.0\.0\.1 - - \[[^]]+\] "GET /small\.txt HTTP/1\.1" 200 17 "x{8000}" "(\d+)-x{8000}"$'
    )
    seen = set()
    for line in lines:
        match = pattern.match(line)
        assert match, line[:200]
        seen.add(int(match.group(1)))
    assert seen == set(range(200))


async def test_tls_workers_share_one_certificate(tmp_path: Path) -> None:
    site(tmp_path)
    async with running_host(web(workers=2, tls="true"), tmp_path) as host:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        certs = set()
        for _ in range(12):
            reader, writer = await asyncio.open_connection(*host.bound("site")[0], ssl=context)
            ssl_object = writer.get_extra_info("ssl_object")
            certs.add(ssl_object.getpeercert(binary_form=True))
            writer.write(b"GET /small.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert (await reader.read()).endswith(b"small and served\n")
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()
        assert len(certs) == 1
        await eventually(lambda: host.apps["site"].counters.connections_total == 12, "counted")


async def test_an_inherited_socket_is_shared_by_the_workers(tmp_path: Path) -> None:
    # Socket activation hands over one socket, without SO_REUSEPORT: every worker accepts
    # on it.
    site(tmp_path)
    inherited = socket.socket()
    inherited.bind(("127.0.0.1", 0))
    inherited.listen(16)
    address = inherited.getsockname()
    config = parse_config(
        web(workers=2).replace('"127.0.0.1:0"', f'"127.0.0.1:{address[1]}"'),
        file=str(tmp_path / "serve.toml"),
        base_dir=tmp_path,
    )
    host = Host(config, status_file=tmp_path / "status.json", inherited=[("site", inherited)])
    await host.start()
    try:
        assert host.bound("site") == [address]
        assert len(host.status()["apps"][0]["workers"]) == 2
        for _ in range(10):
            reader, writer = await asyncio.open_connection(*address)
            writer.write(b"GET /small.txt HTTP/1.0\r\n\r\n")
            assert (await reader.read()).endswith(b"small and served\n")
            writer.close()
            await writer.wait_closed()
        app = host.apps["site"]
        await eventually(lambda: app.counters.connections_total == 10, "ten connections")
    finally:
        await host.stop(1.0)


async def test_a_port_another_server_listens_on_is_refused(tmp_path: Path) -> None:
    # Another server's SO_REUSEPORT socket would let the workers' sockets join it and
    # take half of its connections: binding must fail as it does without workers.
    site(tmp_path)
    other = socket.socket()
    other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    other.bind(("127.0.0.1", 0))
    other.listen(16)
    port = other.getsockname()[1]
    config = parse_config(
        web(workers=2).replace('"127.0.0.1:0"', f'"127.0.0.1:{port}"'),
        file=str(tmp_path / "serve.toml"),
        base_dir=tmp_path,
    )
    host = Host(config, status_file=tmp_path / "status.json")
    try:
        with pytest.raises(
            BindError, match=r"cannot listen on 127\.0\.0\.1:\d+ for \[apps\.site\]"
        ):
            await host.start()
    finally:
        other.close()
        if host.ready.is_set():  # started after all: stop its workers
            await host.stop(0.0)


# -- the processes' life: `portkit serve` as a process ---------------------------------------


def write_config(base: Path, **options: object) -> Path:
    config = base / "serve.toml"
    config.write_text("[host]\ngrace = 5.0\n" + web(**options))
    return config


def status(serve: ServeProcess) -> dict[str, object]:
    doc: dict[str, object] = json.loads((serve.tmp / "status.json").read_text())
    return doc


def worker_pids(serve: ServeProcess) -> list[int]:
    apps = status(serve)["apps"]
    assert isinstance(apps, list)
    pids: list[int] = apps[0]["workers"]
    return pids


def test_a_killed_worker_is_restarted_and_stop_leaves_no_process(tmp_path: Path) -> None:
    site(tmp_path)
    with ServeProcess(write_config(tmp_path, workers=2), tmp_path) as serve:
        doc = serve.start()
        assert serve.proc is not None
        parent = serve.proc.pid
        first = doc["apps"][0]["workers"]
        assert children(parent) == set(first)
        os.kill(first[0], signal.SIGKILL)
        wait_until(
            lambda: first[0] not in worker_pids(serve) and len(worker_pids(serve)) == 2,
            "a new worker",
        )
        assert f"worker 0 (pid {first[0]}) was killed by SIGKILL: restarting it" in serve.stderr()
        host, port = addresses(doc, "site")[0]
        for _ in range(6):  # both serve
            with socket.create_connection((host, port)) as sock:
                sock.sendall(b"GET /small.txt HTTP/1.0\r\n\r\n")
                assert sock.makefile("rb").read().endswith(b"small and served\n")
        workers = worker_pids(serve)
        assert children(parent) == set(workers)
        status_file = tmp_path / "status.json"
        shown = show_status(status_file)
        header, row = shown.splitlines()[1:3]
        assert row.split()[header.split().index("PROCS")] == "2"
        serve.signal(signal.SIGTERM)
        assert serve.wait(30) == 0
    assert not any(alive(pid) for pid in workers)


def test_a_worker_holds_none_of_the_hosts_descriptors(tmp_path: Path) -> None:
    # Forked from the running host: its event loop (epoll set, self-pipe) and sockets
    # must not live on in the worker. The worker has one loop, its own.
    site(tmp_path)
    config = tmp_path / "serve.toml"
    config.write_text(web(workers=2) + '[apps.echo]\nkind = "echo"\nlisten = "127.0.0.1:0"\n')
    with ServeProcess(config, tmp_path) as serve:
        doc = serve.start()
        assert serve.proc is not None
        echo_port = addresses(doc, "echo")[0][1]
        for pid in doc["apps"][0]["workers"]:
            fd_dir = Path(f"/proc/{pid}/fd")
            targets = [os.readlink(fd_dir / name) for name in os.listdir(fd_dir)]
            assert targets.count("anon_inode:[eventpoll]") == 1, targets
            held = subprocess.run(
                ["ss", "-tlnpH", f"( sport = :{echo_port} )"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            assert f"pid={pid}," not in held, held  # the echo application's socket
        serve.signal(signal.SIGTERM)
        assert serve.wait(30) == 0


class Download:
    """A 16 MiB download begun (head read), whose rest a thread reads once asked to."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        self.sock.sendall(b"GET /big.bin HTTP/1.0\r\n\r\n")
        self._stream = self.sock.makefile("rb")
        self.head = self._stream.read(4096)
        self._rest: list[bytes] = []
        self._reading = threading.Thread(target=lambda: self._rest.append(self._stream.read()))

    def read_on(self) -> None:
        """Go on reading in a thread (while the test waits on the host)."""
        self._reading.start()

    def body(self) -> bytes:
        """The whole body, once the rest is read."""
        self._reading.join(30)
        self._stream.close()
        self.sock.close()
        return (self.head + self._rest[0]).partition(b"\r\n\r\n")[2]


def test_sigterm_to_a_worker_is_a_graceful_stop_and_it_is_replaced(tmp_path: Path) -> None:
    # systemd stops a service by signalling every process of it: a worker finishes what
    # it serves, as the host would.
    site(tmp_path)
    with ServeProcess(write_config(tmp_path, workers=2), tmp_path) as serve:
        doc = serve.start()
        host, port = addresses(doc, "site")[0]
        download = Download(host, port)
        (serving,) = server_sockets(port)[host]
        download.read_on()
        os.kill(serving, signal.SIGTERM)
        assert len(download.body()) == 16 * 1024 * 1024
        wait_until(lambda: serving not in worker_pids(serve), "a new worker")
        assert f"worker 0 (pid {serving}) exited with status 0" in serve.stderr() or (
            f"worker 1 (pid {serving}) exited with status 0" in serve.stderr()
        )
        serve.signal(signal.SIGTERM)
        assert serve.wait(30) == 0


def test_workers_die_with_a_killed_host(tmp_path: Path) -> None:
    site(tmp_path)
    with ServeProcess(write_config(tmp_path, workers=2), tmp_path) as serve:
        workers = serve.start()["apps"][0]["workers"]
        assert all(alive(pid) for pid in workers)
        serve.signal(signal.SIGKILL)
        serve.wait(10)
        wait_until(lambda: not any(alive(pid) for pid in workers), "the workers exit")


def test_reload_replaces_the_workers_and_keeps_a_download(tmp_path: Path) -> None:
    site(tmp_path)
    config = write_config(tmp_path, workers=2)
    with ServeProcess(config, tmp_path) as serve:
        doc = serve.start()
        old = doc["apps"][0]["workers"]
        host, port = addresses(doc, "site")[0]
        download = Download(host, port)
        assert download.head.startswith(b"HTTP/1.0 200")
        config.write_text(config.read_text().replace("workers = 2", "workers = 3"))
        download.read_on()
        serve.signal(signal.SIGHUP)  # READY=1 once the old workers are done
        serve.wait_notify("READY=1")
        assert len(download.body()) == 16 * 1024 * 1024
        new = worker_pids(serve)
        assert len(new) == 3
        assert not set(new) & set(old)
        for _ in range(6):
            with socket.create_connection((host, port)) as sock:
                sock.sendall(b"GET /small.txt HTTP/1.0\r\n\r\n")
                assert sock.makefile("rb").read().endswith(b"small and served\n")
        wait_until(lambda: not any(alive(pid) for pid in old), "the old workers exit")
        assert "reload: [apps.site] restarted: options workers" in serve.stderr()
        serve.signal(signal.SIGTERM)
        assert serve.wait(30) == 0
    assert not any(alive(pid) for pid in new)


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: a port below 1024, dropping privileges")
def test_workers_serve_a_low_port_with_a_root_only_key_after_the_drop() -> None:
    # The dropped-to user reaches the notify socket and writes the status files; the key
    # is readable by root only, and a worker started again after the drop still has it.
    tmp = Path(tempfile.mkdtemp(prefix="pk-workers-"))
    try:
        tmp.chmod(0o777)
        site(tmp)
        private = tmp / "private"
        private.mkdir(mode=0o700)
        cert_pem, key_pem = self_signed_pem()
        (private / "site.pem").write_bytes(cert_pem + key_pem)
        config = tmp / "serve.toml"
        config.write_text(
            '[host]\nuser = "nobody"\n[apps.site]\nkind = "web"\nlisten = "127.0.0.1:81"\n'
            'root = "public"\nworkers = 2\ntls = true\ncert = "private/site.pem"\n'
        )
        with ServeProcess(config, tmp, world_writable=True) as serve:
            doc = serve.start()
            first = doc["apps"][0]["workers"]
            for pid in first:
                uid = Path(f"/proc/{pid}/status").read_text().split("Uid:")[1].split()[0]
                assert int(uid) != 0
            os.kill(first[0], signal.SIGKILL)
            wait_until(lambda: first[0] not in worker_pids(serve), "a new worker")
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            for _ in range(6):
                with (
                    socket.create_connection(("127.0.0.1", 81)) as raw,
                    context.wrap_socket(raw) as sock,
                ):
                    sock.sendall(b"GET /small.txt HTTP/1.0\r\n\r\n")
                    assert sock.makefile("rb").read().endswith(b"small and served\n")
            serve.signal(signal.SIGTERM)
            assert serve.wait(30) == 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
