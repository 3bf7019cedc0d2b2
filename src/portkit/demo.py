"""``portkit demo``: the whole system of ports, end to end, on this one machine.

A computer has one address and many server applications, each listening on its own
port; a client reaches the one it wants by address *and* port, as a caller dials a
number and then an extension. The demo makes each part of that happen, on loopback
only, in about ten seconds, and cleans up after itself:

1. the "remote computer": ``portkit serve`` with no configuration (web, video and
   mail applications), started as a child process; the demo waits for its ready file;
2. the clients: a web client fetches ``/login``, a mail client sends a message by SMTP
   and reads it back by POP3 and IMAP, a video client asks for a byte range;
3. the directory: a scan of the ports the computer serves, each with the service the
   registry expects there and what identification found, and what a URL with a
   non-standard port means;
4. what to try next, by hand.

A part that fails, or that this installation lacks, is reported as such; the demo's
exit status is 0 only when every part worked.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from portkit._columns import format_table
from portkit._errors import PortkitError
from portkit.endpoint._authority import host_port

__all__ = ["DEMO_MESSAGE_SUBJECT", "DemoError", "ServedApp", "http_url", "run_demo", "served_apps"]

READY_TIMEOUT = 30.0  # seconds for `portkit serve` to bind everything and say so
STOP_TIMEOUT = 10.0  # seconds for it to stop after SIGTERM before it is killed
CLIENT_TIMEOUT = 10.0  # seconds for each client conversation
SCAN_BUDGET = 5.0  # seconds identification may spend on each port
POLL_INTERVAL = 0.05  # seconds between looks at the ready file
DEMO_MESSAGE_SUBJECT = "portkit demo: hello from the mail client"
DEMO_MAIL_USER = "demo"  # the account `portkit serve` creates with no configuration
DEMO_MAIL_PASSWORD = "demo"
HOST = "127.0.0.1"


class DemoError(PortkitError):
    """One part of the demo did not work; the message says what and why."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ServedApp:
    """An application the demo computer serves: its name, kind and one endpoint."""

    name: str
    kind: str
    host: str
    port: int


@dataclass(slots=True)
class _Report:
    """Collects the demo's output and which parts worked."""

    out: TextIO
    failed: list[str] = field(default_factory=list)

    def line(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def block(self, text: str, indent: str = "   ") -> None:
        for row in text.splitlines():
            self.line(f"{indent}{row}".rstrip())

    def fail(self, part: str, reason: str) -> None:
        self.failed.append(part)
        self.line(f"   {part}: NOT SHOWN: {reason}")


# -- 1. the remote computer ------------------------------------------------------------


@contextlib.contextmanager
def _serve(workdir: Path) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, Any], float]]:
    """Run ``portkit serve`` (no configuration) until the block ends; yield its status."""
    ready_file = workdir / "ready.json"
    log_path = workdir / "serve.log"
    started = time.monotonic()
    with log_path.open("wb") as log:
        try:
            proc = _start(ready_file, workdir, log)
        except OSError as exc:
            raise DemoError(f"cannot start portkit serve: {exc}") from exc
    try:
        deadline = started + READY_TIMEOUT
        # The ready file is written (atomically) only once every listener is bound.
        while not ready_file.exists():
            if proc.poll() is not None:
                raise DemoError(f"portkit serve exited ({proc.returncode}): {_last_line(log_path)}")
            if time.monotonic() > deadline:
                raise DemoError(f"portkit serve was not ready within {READY_TIMEOUT:g} s")
            time.sleep(POLL_INTERVAL)
        status = json.loads(ready_file.read_text(encoding="utf-8"))
        yield proc, status, time.monotonic() - started
    finally:
        _stop(proc)


def _start(ready_file: Path, workdir: Path, log: BinaryIO) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "portkit", "serve", "--demo", "--ready-file", str(ready_file)]
    # The status file too goes in workdir, so that nothing is left outside it.
    command += ["--status-file", str(workdir / "status.json")]
    return subprocess.Popen(
        command,
        cwd=workdir,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=_child_env(),
    )


def _child_env() -> dict[str, str]:
    """The environment for ``portkit serve``: this very portkit first on the path."""
    import portkit

    package_root = str(Path(portkit.__file__).resolve().parent.parent)
    path = os.environ.get("PYTHONPATH")
    return {
        **os.environ,
        "PYTHONPATH": package_root + (os.pathsep + path if path else ""),
        "PYTHONUNBUFFERED": "1",
    }


def _last_line(log_path: Path) -> str:
    lines = log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    return lines[-1] if lines else "(no output)"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def served_apps(status: dict[str, Any]) -> list[ServedApp]:
    """The applications of a ``portkit serve`` status document, one endpoint each."""
    from portkit.endpoint import parse_endpoint

    apps = []
    for app in status.get("apps", []):
        for address in app.get("listen", []):
            endpoint = parse_endpoint(str(address))
            apps.append(
                ServedApp(
                    name=app["name"], kind=app["kind"], host=endpoint.host, port=endpoint.port
                )
            )
    return apps


def _show_computer(report: _Report, apps: list[ServedApp], pid: int, seconds: float) -> None:
    from portkit.registry import default_registry

    registry = default_registry()
    report.line(f"   portkit serve is running (pid {pid}), ready in {seconds:.1f} s:")
    rows = []
    alternates = []
    for app in apps:
        conventional = _conventional_port(app.kind)
        if conventional is not None and conventional != app.port:
            alternates.append((app, conventional))
        rows.append(
            (
                app.name,
                app.kind,
                host_port(app.host, app.port),
                registry.service_name(app.port) or "-",
            )
        )
    report.block(format_table(("APP", "KIND", "LISTENS ON", "REGISTRY NAME OF THAT PORT"), rows))
    if alternates:
        shown = ", ".join(f"{app.name} on {app.port}, not {port}" for app, port in alternates)
        report.block(
            textwrap.fill(f"Not every application is on its well-known port: {shown}.", width=86)
        )
        report.line("   A client must be told such a port: the non-standard-port case.")
        if os.geteuid() != 0:
            report.line("   (The well-known ports below 1024 need root; run as root to see them.)")
    else:
        report.line("   Every application is on its well-known port: clients need no port number.")


# The service each kind speaks, for its well-known port; the port comes from the registry.
_KIND_SERVICE = {"web": "http", "video": "http", "smtp": "smtp", "pop3": "pop3", "imap": "imap"}


def _conventional_port(kind: str) -> int | None:
    from portkit._errors import LookupNotFound
    from portkit.registry import default_registry

    service = _KIND_SERVICE.get(kind)
    if service is None:
        return None
    try:
        return default_registry().port_for(service, "tcp")
    except LookupNotFound:
        return None


# -- 2. the clients ----------------------------------------------------------------------


def _first(apps: list[ServedApp], kind: str) -> ServedApp:
    for app in apps:
        if app.kind == kind:
            return app
    raise DemoError(f"the demo computer serves no {kind} application")


async def _web_client(app: ServedApp) -> str:
    import aiohttp

    url = http_url(app, "/login")
    timeout = aiohttp.ClientTimeout(total=CLIENT_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as response:
        body = await response.read()
        if response.status != 200:
            raise DemoError(f"GET {url} answered {response.status} {response.reason}")
        kind = response.headers.get("Content-Type", "?").split(";")[0]
        title = _html_title(body)
        titled = f', title "{title}"' if title else ""
        return (
            f"GET {url} -> {response.status} {response.reason}, {kind}, {len(body)} bytes{titled}"
        )


def _html_title(body: bytes) -> str | None:
    from html.parser import HTMLParser

    class _Title(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.inside = False
            self.title: str | None = None

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            self.inside = tag == "title" and self.title is None

        def handle_data(self, data: str) -> None:
            if self.inside:
                self.title = data.strip()
                self.inside = False

    parser = _Title()
    parser.feed(body[:65536].decode("utf-8", errors="replace"))
    return parser.title


async def _video_client(app: ServedApp) -> str:
    import re

    import aiohttp
    from yarl import URL

    base = http_url(app)
    timeout = aiohttp.ClientTimeout(total=CLIENT_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.get(base) as index:
            page = (await index.read()).decode("utf-8", errors="replace")
        sources = re.findall(r'<(?:source|video)[^>]*\ssrc="([^"]+)"', page)
        if not sources:
            raise DemoError(f"the video index {base} lists no video")
        url = str(index.url.join(URL(sources[0])))
        async with session.get(url, headers={"Range": "bytes=0-1023"}) as response:
            body = await response.read()
            if response.status != 206:
                raise DemoError(f"range request to {url} answered {response.status}, not 206")
            return (
                f"GET {url} Range: bytes=0-1023 -> {response.status} {response.reason}, "
                f"Content-Range: {response.headers.get('Content-Range')}, {len(body)} bytes"
            )


def _mail_clients(apps: list[ServedApp]) -> list[str]:
    import imaplib
    import poplib
    import smtplib
    from email.message import EmailMessage

    smtp, pop3, imap = _first(apps, "smtp"), _first(apps, "pop3"), _first(apps, "imap")
    user, password, address = _demo_account()
    message = EmailMessage()
    message["From"] = "client@demo.portkit.test"
    message["To"] = address
    message["Subject"] = DEMO_MESSAGE_SUBJECT
    message.set_content("Dialled 127.0.0.1, extension SMTP; read back by POP3 and IMAP.\n")
    lines = []
    with smtplib.SMTP(smtp.host, smtp.port, timeout=CLIENT_TIMEOUT) as client:
        refused = client.send_message(message)
        if refused:
            raise DemoError(f"SMTP refused recipients: {refused}")
    lines.append(
        f'SMTP {host_port(smtp.host, smtp.port)}: sent "{DEMO_MESSAGE_SUBJECT}" to {address}'
    )

    pop = poplib.POP3(pop3.host, pop3.port, timeout=CLIENT_TIMEOUT)
    try:
        pop.user(user)
        pop.pass_(password)
        count, _ = pop.stat()
        found = False
        for number in range(count, 0, -1):
            _, body, _ = pop.retr(number)
            if any(DEMO_MESSAGE_SUBJECT.encode() in line for line in body):
                found = True
                break
    finally:
        pop.quit()
    if not found:
        raise DemoError(
            f"POP3 {host_port(pop3.host, pop3.port)}: the message is not in the mailbox"
        )
    lines.append(
        f"POP3 {host_port(pop3.host, pop3.port)}: {count} message(s) for {user}; read it back"
    )

    with imaplib.IMAP4(imap.host, imap.port, timeout=CLIENT_TIMEOUT) as client:
        client.login(user, password)
        client.select("INBOX", readonly=True)
        kind, data = client.search(None, "SUBJECT", f'"{DEMO_MESSAGE_SUBJECT}"')
        numbers = data[0].split() if kind == "OK" and data and data[0] else []
        if not numbers:
            raise DemoError(f"IMAP {host_port(imap.host, imap.port)}: the message is not in INBOX")
        kind, fetched = client.fetch(numbers[-1], "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        client.logout()
    if kind != "OK":
        raise DemoError(f"IMAP {host_port(imap.host, imap.port)}: FETCH failed: {fetched!r}")
    lines.append(
        f"IMAP {host_port(imap.host, imap.port)}: INBOX has it; fetched its Subject header"
    )
    return lines


def _demo_account() -> tuple[str, str, str]:
    """The mail account of ``portkit serve``'s demo computer: (user, password, address).

    ``portkit serve`` without a configuration creates one account, ``demo`` with password
    ``demo``, that receives mail for every recipient of its domain (see docs/serve.md).
    """
    return DEMO_MAIL_USER, DEMO_MAIL_PASSWORD, f"{DEMO_MAIL_USER}@localhost"


# -- 3. the directory ------------------------------------------------------------------


async def _directory(apps: list[ServedApp]) -> list[tuple[object, ...]]:
    from portkit.scan import (  # type: ignore[attr-defined, unused-ignore]
        PortState,
        scan,
    )

    ports = sorted({app.port for app in apps})
    spec = ",".join(str(port) for port in ports)
    rows: list[tuple[object, ...]] = []
    async for result in scan([HOST], spec, detect=True):
        expected = result.expected or "-"
        if result.state is not PortState.OPEN:
            rows.append((result.port, expected, f"({result.state})", "", "nothing answers"))
            continue
        found = result.identified
        identified = found.service if found is not None and found.service else "unknown"
        product = " ".join(p for p in (found.product, found.version) if p) if found else ""
        rows.append(
            (
                result.port,
                expected,
                identified,
                product,
                _meaning(result.port, expected, identified),
            )
        )
    rows.sort(key=lambda row: int(str(row[0])))
    return rows


def _meaning(port: int, expected: str, identified: str) -> str:
    """What the pair (registry's name, identified service) says about ``port``."""
    from portkit.registry import default_registry
    from portkit.registry._verdict import port_verdict

    kind = port_verdict(
        default_registry(),
        port,
        "tcp",
        None if expected == "-" else expected,
        None if identified == "unknown" else identified,
    )
    return {
        "unidentified": "something answers, but no protocol matched",
        "match": "the well-known extension: clients find it without being told",
        "unregistered": "an unregistered port: clients must be told the number",
        "alternate": f"a usual alternate for {identified}, not its well-known port: "
        "clients must be told",
        "unexpected": f"registered to {expected}, but {identified} answers: clients must be told",
    }[kind]


def http_url(app: ServedApp, path: str = "/") -> str:
    """The URL of ``app``'s ``path`` as a browser writes it (no port when it is 80)."""
    from portkit.endpoint import parse_endpoint

    url = parse_endpoint(f"http://{host_port(app.host, app.port)}{path}").url
    assert url is not None  # a URL always has its normalised form
    return url


def _what_urls_say(report: _Report, apps: list[ServedApp]) -> None:
    from portkit.endpoint import parse_endpoint

    report.line("   What a URL tells a client:")
    for url in (http_url(_first(apps, "web"), "/login"), http_url(_first(apps, "video"))):
        endpoint = parse_endpoint(url)
        report.line(f"   {url}")
        report.line(f"     means: speak HTTP (the scheme) to {endpoint.authority}")
        report.line(f"     why that port: {endpoint.explain()}")


# -- the whole story ---------------------------------------------------------------------


def _part(
    report: _Report, name: str, action: Callable[[], list[str]], *, labelled: bool = True
) -> bool:
    try:
        lines = action()
    except DemoError as exc:
        report.fail(name, str(exc))
        return False
    except ImportError as exc:
        report.fail(name, f"not available in this installation yet ({exc})")
        return False
    except Exception as exc:  # a client library's own error: the demo shows it and goes on
        report.fail(name, f"{type(exc).__name__}: {exc}")
        return False
    for text in lines:
        report.line(f"   {name:<6}{text}" if labelled else f"   {text}")
    return True


def run_demo(out: TextIO | None = None) -> int:
    """Run the demo, writing its story to ``out`` (stdout); 0 when every part worked."""
    report = _Report(out or sys.stdout)
    began = time.monotonic()
    report.line(
        f"portkit demo: one computer ({HOST}), many applications, each on its own port.\n"
        "A client reaches an application by address and port, like a phone number and an\n"
        "extension. Loopback only; everything started here is stopped and removed at the end."
    )
    report.line()
    report.line("1. The remote computer: portkit serve, no configuration")
    with tempfile.TemporaryDirectory(prefix="portkit-demo-") as tmp:
        try:
            with _serve(Path(tmp)) as (proc, status, seconds):
                apps = served_apps(status)
                _show_computer(report, apps, proc.pid, seconds)
                _the_rest(report, apps)
        except DemoError as exc:
            report.fail("serve", str(exc))
            report.line(
                "   (without the remote computer there is nothing for the clients to reach)"
            )
    report.line()
    elapsed = time.monotonic() - began
    if report.failed:
        report.line(
            f"demo finished in {elapsed:.1f} s; NOT shown: {', '.join(report.failed)}; "
            "the server was stopped and its files removed"
        )
        return 1
    report.line(f"demo finished in {elapsed:.1f} s; the server was stopped and its files removed")
    return 0


def _the_rest(report: _Report, apps: list[ServedApp]) -> None:
    report.line()
    report.line("2. The clients, each dialling address and port")
    _part(report, "web", lambda: [asyncio.run(_web_client(_first(apps, "web")))])
    _part(report, "mail", lambda: _mail_clients(apps))
    _part(report, "video", lambda: [asyncio.run(_video_client(_first(apps, "video")))])
    report.line()
    report.line(f"3. The directory: a scan of {HOST} on the ports it serves")

    def directory() -> list[str]:
        rows = asyncio.run(_directory(apps))
        headers = ("PORT", "REGISTRY SAYS", "IDENTIFIED", "PRODUCT", "WHAT IT MEANS")
        return format_table(headers, rows).splitlines()

    _part(report, "scan", directory, labelled=False)
    try:
        _what_urls_say(report, apps)
    except DemoError as exc:
        report.fail("url", str(exc))
    report.line()
    report.line("4. Try it by hand (each works against a running `portkit serve`)")
    web = next((a for a in apps if a.kind == "web"), None)
    smtp = next((a for a in apps if a.kind == "smtp"), None)
    ports = ",".join(str(p) for p in sorted({a.port for a in apps}))
    hints = [("portkit serve", "the same computer, in the foreground")]
    if web is not None:
        hints += [
            (f"curl -i {http_url(web, '/login')}", "the web client's request"),
            (f"portkit listening --port {web.port}", "who holds that port?"),
            (f"portkit resolve {http_url(web, '/login')}", "which port, and why"),
        ]
    if smtp is not None:
        dial = "smtp" if smtp.port == _conventional_port("smtp") else str(smtp.port)
        hints.append((f"portkit connect {smtp.host} {dial}", "talk SMTP by hand (QUIT ends)"))
    hints += [
        (f"portkit scan --detect -p {ports} {HOST}", "the directory again"),
        ("portkit lookup 8080", "what the registry says about a port"),
        ("portkit free-port --near 8000", "a port nobody else is likely to want"),
    ]
    report.block(format_table(("COMMAND", "WHAT IT SHOWS"), hints))
