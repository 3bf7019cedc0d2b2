"""A running mail host for tests: smtp, pop3 and imap (plain, STARTTLS, implicit TLS).

The applications run in a background thread with their own event loop, so the tests can use
blocking real clients (smtplib, poplib, imaplib, curl). Every socket binds 127.0.0.1 port 0;
the fixture returns only after every application is accepting.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from portkit.host._app import AppContext, Application, Listener
from portkit.host.apps.mail import (
    ImapApp,
    ImapOptions,
    MaildirStore,
    Pop3App,
    Pop3Options,
    SmtpApp,
    SmtpOptions,
    hash_password,
)
from tests._tls import client_tls, self_signed_cert

PASSWORD = "correct horse"
# Cheap scrypt parameters keep the many logins of the tests fast; one test uses the defaults.
FAST_HASH = {"n": 16, "r": 1, "p": 1}


def listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.setblocking(False)
    return sock


@dataclass
class MailHost:
    """The running applications and what a client needs to reach them."""

    root: Path
    cert: Path
    key: Path
    loop: asyncio.AbstractEventLoop
    ports: dict[str, int] = field(default_factory=dict)
    apps: dict[str, Application] = field(default_factory=dict)

    @property
    def store(self) -> MaildirStore:
        return MaildirStore(self.root)

    def tls(self) -> ssl.SSLContext:
        return client_tls(self.cert)

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the host's loop thread and return its result."""

        async def wrapper() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(wrapper(), self.loop).result(timeout=30)


def base_options(root: Path, cert: Path, key: Path) -> dict[str, Any]:
    return {
        "maildir": root,
        "users": (
            f"alice:{hash_password(PASSWORD, **FAST_HASH)}",
            f"bob:{hash_password(PASSWORD, **FAST_HASH)}",
        ),
        "domains": ("example.test", "localhost"),
        "cert": cert,
        "key": key,
        "login_delay": 0.0,  # the guard's delays are product behaviour; tests check lockout
        "login_lockout_after": 5,
    }


def start_host(tmp_path: Path, **overrides: Any) -> tuple[MailHost, Callable[[], None]]:
    """Start every mail application variant on loopback; return the host and a stopper."""
    cert, key = self_signed_cert(tmp_path)
    root = tmp_path / "mail"
    common = base_options(root, cert, key) | overrides
    smtp_keys = ("max_message_size", "max_recipients", "max_transfers_per_address")
    smtp_only = {k: common.pop(k) for k in smtp_keys if k in common}
    imap_only = {k: common.pop(k) for k in ("max_literal", "idle_poll") if k in common}
    retrieval_keys = ("send_timeout", "min_send_rate", "max_bad_commands")
    retrieval = {k: common.pop(k) for k in retrieval_keys if k in common}
    variants: dict[str, tuple[type[Application], Any]] = {
        "smtp": (SmtpApp, SmtpOptions(**common, tls="starttls", **smtp_only)),
        "smtps": (SmtpApp, SmtpOptions(**common, tls="implicit", **smtp_only)),
        "submission": (
            SmtpApp,
            SmtpOptions(**common, tls="starttls", submission=True, **smtp_only),
        ),
        "pop3": (Pop3App, Pop3Options(**common, tls="starttls", **retrieval)),
        "pop3s": (Pop3App, Pop3Options(**common, tls="implicit", **retrieval)),
        "imap": (ImapApp, ImapOptions(**common, tls="starttls", **imap_only, **retrieval)),
        "imaps": (ImapApp, ImapOptions(**common, tls="implicit", **imap_only, **retrieval)),
    }
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    thread = threading.Thread(target=_run_loop, args=(loop, ready), daemon=True)
    thread.start()
    ready.wait(10)
    host = MailHost(root=root, cert=cert, key=key, loop=loop)

    async def start_all() -> None:
        for name, (cls, options) in variants.items():
            sock = listening_socket()
            host.ports[name] = sock.getsockname()[1]
            app = cls(options, AppContext.for_app(name, name.rstrip("s")))  # type: ignore[call-arg]
            await app.start([Listener(sock=sock, endpoint=f"127.0.0.1:{host.ports[name]}")])
            host.apps[name] = app

    asyncio.run_coroutine_threadsafe(start_all(), loop).result(timeout=30)

    def stop() -> None:
        async def stop_all() -> None:
            for app in host.apps.values():
                await app.stop(0.5)

        asyncio.run_coroutine_threadsafe(stop_all(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()

    return host, stop


def _run_loop(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
    asyncio.set_event_loop(loop)
    loop.call_soon(ready.set)
    loop.run_forever()
    # Finish what stop() left: cancelled handlers closing their transports.
    pending = asyncio.all_tasks(loop)
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.run_until_complete(loop.shutdown_default_executor())


@pytest.fixture
def mail_host(tmp_path: Path) -> Iterator[MailHost]:
    host, stop = start_host(tmp_path)
    try:
        yield host
    finally:
        stop()


__all__ = ["PASSWORD", "MailHost", "client_tls", "replace", "self_signed_cert", "start_host"]
