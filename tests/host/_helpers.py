"""Helpers for the host tests: an in-process host, a `portkit serve` process, curl."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from portkit.host._config import parse_config
from portkit.host._host import Host

SRC = Path(__file__).resolve().parents[2] / "src"
READY_TIMEOUT = 30.0


@contextlib.asynccontextmanager
async def running_host(text: str, base: Path, *, grace: float = 1.0) -> AsyncIterator[Host]:
    """Start a host for configuration ``text`` (paths relative to ``base``); stop it after."""
    config = parse_config(text, file=str(base / "serve.toml"), base_dir=base)
    host = Host(config, status_file=base / "status.json")
    await host.start()
    try:
        yield host
    finally:
        await host.stop(grace)


def url(host: Host, app: str, path: str = "/", scheme: str = "http") -> str:
    address, port = host.bound(app)[0]
    hostpart = f"[{address}]" if ":" in address else address
    return f"{scheme}://{hostpart}:{port}{path}"


async def curl(*args: str) -> tuple[int, bytes, bytes]:
    """Run curl (silent, 20 s cap) and return (exit status, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        "curl",
        "-sS",
        "--max-time",
        "20",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out, err


def parse_head(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Split an HTTP/1.1 response (curl -i) into status, headers (lower-case), body."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


class ServeProcess:
    """`python -m portkit serve CONFIG` in a child process, ready via NOTIFY_SOCKET."""

    def __init__(
        self,
        config: Path | None,
        tmp: Path,
        *extra: str,
        env: dict[str, str] | None = None,
        world_writable: bool = False,
    ) -> None:
        self.config = config
        self.tmp = tmp
        self.ready_file = tmp / "ready.json"
        self.notify_path = tmp / "notify.sock"
        self.extra = extra
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.notify: socket.socket | None = None
        self.stderr_path = tmp / "serve.stderr"
        self.stdout_path = tmp / "serve.stdout"
        self.world_writable = world_writable

    def start(self) -> dict[str, Any]:
        """Start and wait for READY=1; return the ready file (the status document)."""
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(str(self.notify_path))
        if self.world_writable:  # for a child that drops privileges
            self.notify_path.chmod(0o777)
        self.notify.settimeout(READY_TIMEOUT)
        env = dict(os.environ)
        env.update(PYTHONPATH=str(SRC), NOTIFY_SOCKET=str(self.notify_path), **self.env)
        with self.stderr_path.open("wb") as err, self.stdout_path.open("wb") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "portkit",
                    "serve",
                    *([] if self.config is None else [str(self.config)]),
                    "--ready-file",
                    str(self.ready_file),
                    "--status-file",
                    str(self.tmp / "status.json"),
                    *self.extra,
                ],
                env=env,
                stdout=out,
                stderr=err,
                pass_fds=self._pass_fds(),
            )
        self.wait_notify("READY=1")
        doc: dict[str, Any] = json.loads(self.ready_file.read_text())
        return doc

    def _pass_fds(self) -> tuple[int, ...]:
        return ()

    def wait_notify(self, wanted: str) -> list[str]:
        """Receive notifications until one has the field ``wanted``; return its fields."""
        assert self.notify is not None
        while True:
            try:
                data = self.notify.recv(4096)
            except TimeoutError:
                raise AssertionError(f"no {wanted} in {READY_TIMEOUT}s: {self.stderr()}") from None
            fields = data.decode().split("\n")
            if wanted in fields:
                return fields

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 60) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self.notify is not None:
            self.notify.close()

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def poll_status(path: Path, app: str, done: Any) -> dict[str, int]:
    """Re-read the status file (rewritten every second) until ``done(counters)``."""
    deadline = time.monotonic() + 30
    while True:
        doc = json.loads(path.read_text())
        counters: dict[str, int] = next(a for a in doc["apps"] if a["name"] == app)["counters"]
        if done(counters) or time.monotonic() > deadline:
            return counters
        time.sleep(0.05)


def show_status(status_file: Path) -> str:
    """The output of ``portkit serve --status`` for ``status_file``."""
    return subprocess.run(
        [sys.executable, "-m", "portkit", "serve", "--status", "--status-file", str(status_file)],
        env={**os.environ, "PYTHONPATH": str(SRC)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def addresses(doc: dict[str, Any], app: str) -> list[tuple[str, int]]:
    """The (host, port) pairs application ``app`` listens on, from a status document."""
    for entry in doc["apps"]:
        if entry["name"] == app:
            result = []
            for text in entry["listen"]:
                hostpart, _, port = text.rpartition(":")
                result.append((hostpart.strip("[]"), int(port)))
            return result
    raise KeyError(app)


EVENTUALLY = 10.0


async def eventually(condition: Callable[[], bool], what: str) -> None:
    """Wait until ``condition()`` holds (checked every few ms), failing after EVENTUALLY s."""
    try:
        async with asyncio.timeout(EVENTUALLY):
            # Counters are plain integers with no event to wait on: poll them.
            while not condition():  # noqa: ASYNC110
                await asyncio.sleep(0.005)
    except TimeoutError:
        raise AssertionError(f"not reached in {EVENTUALLY}s: {what}") from None
