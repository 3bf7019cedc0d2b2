"""The HTML report of a real scan, in headless Chromium.

Servers on a loopback address of their own (127.x.y.z, so that no other test's
listeners collide): an SSH-like banner on 2222 (registered to another service) full of
markup, plain HTTP on 9443 (registered as tungsten-https) with a hostile Server header
and title, HTTPS on 8443 with a self-signed certificate, and a closed port. The real
``portkit scan --detect`` writes JSON and HTML; ``portkit report`` converts the JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import ssl
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import _tls

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
SSH_PORT, TLS_PORT, HTTP_PORT, CLOSED_PORT = 2222, 8443, 9443, 9
HOSTILE_BANNER = (
    b"SSH-2.0-<script>window.__pwned=1</script> <img src=x onerror=window.__pwned=2>\r\n"
)
HOSTILE_PAGE = (
    b"HTTP/1.1 200 OK\r\nServer: <svg onload=window.__pwned=3>\r\n"
    b"Content-Type: text/html\r\nContent-Length: 64\r\nConnection: close\r\n\r\n"
    + b'<html><title>" autofocus onfocus="window.__pwned=4</title></html>'.ljust(64)
)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Chromium at /usr/bin/chromium"),
    pytest.mark.slow,
]


async def _ssh(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        writer.write(HOSTILE_BANNER)
        await writer.drain()
        await reader.read(1024)  # until the scanner hangs up


async def _http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    # The scanner may try other probes first (a TLS hello, nothing at all): no answer.
    with contextlib.suppress(
        ConnectionError, ssl.SSLError, asyncio.IncompleteReadError, asyncio.LimitOverrunError
    ):
        request = await reader.readuntil(b"\r\n\r\n")
        if request.startswith(b"GET "):
            writer.write(HOSTILE_PAGE)
            await writer.drain()


@contextlib.contextmanager
def servers(address: str, tls: ssl.SSLContext) -> Iterator[None]:
    """The three listeners on ``address``, served by an event loop in a thread."""
    loop = asyncio.new_event_loop()
    started: list[asyncio.Server] = []
    tasks: set[asyncio.Task[None]] = set()

    def tracked(handler: Handler) -> Handler:
        async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            tasks.add(task)
            try:
                await handler(reader, writer)
            finally:
                writer.close()
                tasks.discard(task)

        return run

    async def start() -> None:
        started.append(await asyncio.start_server(tracked(_ssh), address, SSH_PORT))
        started.append(await asyncio.start_server(tracked(_http), address, HTTP_PORT))
        started.append(await asyncio.start_server(tracked(_http), address, TLS_PORT, ssl=tls))

    async def stop() -> None:
        for server in started:
            server.close()
            await server.wait_closed()
        for task in list(tasks):  # connections the scanner left open
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        # Listening once start() returns: the scan may begin.
        asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=10)
        yield
    finally:
        asyncio.run_coroutine_threadsafe(stop(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


def portkit(*args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "portkit", *args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A real scan of the listeners: its JSON, its HTML page, the page from the JSON."""
    work = tmp_path_factory.mktemp("html")
    address = (
        f"127.{random.randrange(100, 250)}.{random.randrange(1, 250)}.{random.randrange(2, 250)}"
    )
    ports = f"{CLOSED_PORT},{SSH_PORT},{TLS_PORT},{HTTP_PORT}"
    with servers(address, _tls.self_signed_context(work)):
        scan = ["scan", address, "-p", ports, "--detect", "--timeout", "3"]
        portkit(*scan, "-o", "json", "--output", str(work / "scan.json"))
        portkit(*scan, "-o", "html", "--output", str(work / "direct.html"))
    portkit("report", str(work / "scan.json"), "-o", "html", "--output", str(work / "scan.html"))
    return {
        "address": address,
        "json": json.loads((work / "scan.json").read_text()),
        "pages": {"report": work / "scan.html", "scan": work / "direct.html"},
    }


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any, scanned: dict[str, Any]) -> Iterator[Any]:
    """The page converted from the JSON, with every request other than the file counted."""
    url = scanned["pages"]["report"].as_uri()
    context = browser.new_context()
    other: list[str] = []

    def route(request_route: Any) -> None:
        if request_route.request.url != url:
            other.append(request_route.request.url)
            request_route.abort()
        else:
            request_route.continue_()

    context.route("**/*", route)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))

    def on_dialog(dialog: Any) -> None:  # alert() from a server's text would open one
        errors.append(f"dialog {dialog.message}")
        dialog.dismiss()

    tab.on("dialog", on_dialog)
    tab.goto(url)
    tab.other_requests = other
    yield tab
    context.close()
    assert errors == []


def rows(page: Any) -> list[dict[str, str]]:
    """The visible rows of the first host's table: port, state, verdict, class."""
    return page.eval_on_selector_all(  # type: ignore[no-any-return]
        "table.ports tbody tr:not([hidden])",
        """rows => rows.map(r => ({port: r.cells[0].dataset.sort, state: r.dataset.state,
            verdict: r.dataset.verdict, cls: r.className,
            text: r.cells[r.cells.length - 2].textContent.trim()}))""",
    )


@pytest.mark.parametrize("source", ["report", "scan"])
def test_every_port_found_is_on_the_page(
    browser: Any, scanned: dict[str, Any], source: str
) -> None:
    tab = browser.new_page()
    try:
        tab.goto(scanned["pages"][source].as_uri())
        (host,) = scanned["json"]["hosts"]
        found = {(p["port"], p["state"]) for p in host["ports"]}
        assert found == {
            (CLOSED_PORT, "closed"),
            (SSH_PORT, "open"),
            (TLS_PORT, "open"),
            (HTTP_PORT, "open"),
        }
        shown = {(int(r["port"]), r["state"]) for r in rows(tab)}
        assert shown == found
        assert tab.locator("h2", has_text=scanned["address"]).count() == 1
        assert tab.locator(".shown").inner_text() == "4 of 4 ports"
    finally:
        tab.close()


def test_the_page_makes_no_requests(page: Any) -> None:
    page.wait_for_load_state("networkidle")
    page.locator("table.ports th button").first.click()
    page.locator("input.filter").fill("ssh")
    assert page.other_requests == []


def test_hostile_server_text_runs_nothing(page: Any) -> None:
    page.keyboard.press("Tab")  # an autofocus/onfocus attribute would fire on focus
    for row in range(4):  # and a details toggle renders its contents
        page.locator("table.ports tbody tr").nth(row).focus()
        page.keyboard.press("Enter")
    assert page.evaluate("window.__pwned") is None
    assert page.locator("img, svg, body script").count() == 1  # the page's own script
    text = page.locator("body").inner_text()
    assert "<script>window.__pwned=1</script>" in text  # the first bytes, shown as text
    assert "<svg onload=window.__pwned=3>" in text
    assert '" autofocus onfocus="window.__pwned=4' in text


def test_sorting_by_a_column(page: Any) -> None:
    port_header = page.locator("table.ports th", has_text="Port")
    port_header.locator("button").click()
    assert [int(r["port"]) for r in rows(page)] == sorted(
        [CLOSED_PORT, SSH_PORT, TLS_PORT, HTTP_PORT]
    )
    assert port_header.get_attribute("aria-sort") == "ascending"
    port_header.locator("button").click()
    assert [int(r["port"]) for r in rows(page)] == sorted(
        [CLOSED_PORT, SSH_PORT, TLS_PORT, HTTP_PORT], reverse=True
    )
    assert port_header.get_attribute("aria-sort") == "descending"
    page.locator("table.ports th", has_text="State").locator("button").click()
    assert [r["state"] for r in rows(page)] == ["open", "open", "open", "closed"]
    page.locator("table.ports th", has_text="Expected vs actual").locator("button").click()
    assert [r["verdict"] for r in rows(page)][:2] == ["unexpected", "unexpected"]


def test_filtering(page: Any) -> None:
    page.locator("input.filter").fill("ssh")
    assert [int(r["port"]) for r in rows(page)] == [SSH_PORT]
    assert page.locator(".shown").inner_text() == "1 of 4 ports"
    page.locator("input.filter").fill("tls self-signed")  # every word must match
    assert [int(r["port"]) for r in rows(page)] == [TLS_PORT]
    page.locator("input.filter").fill("")
    page.locator("select.state-filter").select_option("closed")
    assert [int(r["port"]) for r in rows(page)] == [CLOSED_PORT]
    page.locator("select.state-filter").select_option("")
    page.locator("input.only-unexpected").check()
    assert sorted(int(r["port"]) for r in rows(page)) == [SSH_PORT, HTTP_PORT]
    page.locator("input.filter").fill("no such thing")
    assert rows(page) == []
    assert page.locator("p.none").is_visible()


def test_expected_vs_actual_is_highlighted(page: Any) -> None:
    by_port = {int(r["port"]): r for r in rows(page)}
    ssh = by_port[SSH_PORT]
    assert ssh["verdict"] == "unexpected"
    assert "row-unexpected" in ssh["cls"]
    assert ssh["text"] == "registered to ethernet/ip-1, but ssh answers"
    assert by_port[HTTP_PORT]["text"] == "registered to tungsten-https, but http answers"
    assert by_port[TLS_PORT]["verdict"] == "alternate"  # https on pcsync-https
    assert "row-unexpected" not in by_port[TLS_PORT]["cls"]
    background = page.locator(f"#host-1-tcp-{SSH_PORT}").evaluate(
        "r => getComputedStyle(r).backgroundColor"
    )
    plain = page.locator(f"#host-1-tcp-{TLS_PORT}").evaluate(
        "r => getComputedStyle(r).backgroundColor"
    )
    assert background != plain  # the highlight shows, not only a class
    links = page.locator(".surprises a").all_inner_texts()
    assert sorted(links) == sorted(
        f"{page.locator('h2').nth(1).inner_text()}:{p}/tcp" for p in (SSH_PORT, HTTP_PORT)
    )


def test_certificate_details(page: Any) -> None:
    row = page.locator(f"#host-1-tcp-{TLS_PORT}")
    assert "self-signed" in row.locator("td").nth(6).inner_text()
    row.locator("summary").click()
    details = row.locator("dl.detail").inner_text()
    assert "CN=localhost" in details
    assert "localhost, 127.0.0.1" in details  # subject alternative names
    assert "TLSv1." in details


def test_keyboard_navigation(page: Any) -> None:
    page.locator("h1").click()
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.className") == "filter"
    page.keyboard.press("Tab")
    page.keyboard.press("/")  # not while in a form field: typed there, or ignored
    assert page.evaluate("document.activeElement.className") == "state-filter"
    page.locator("h1").click()
    page.keyboard.press("/")
    page.keyboard.type("http")
    assert len(rows(page)) == 2
    page.keyboard.press("Escape")
    assert len(rows(page)) == 4
    # Tab order: filter, state, unexpected-only, then the sort buttons.
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Port"
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")  # descending
    assert [int(r["port"]) for r in rows(page)] == [HTTP_PORT, TLS_PORT, SSH_PORT, CLOSED_PORT]
    first = page.locator("table.ports tbody tr").first
    first.focus()
    page.keyboard.press("ArrowDown")
    assert page.evaluate("document.activeElement.id") == f"host-1-tcp-{TLS_PORT}"
    page.keyboard.press("End")
    assert page.evaluate("document.activeElement.id") == f"host-1-tcp-{CLOSED_PORT}"
    page.keyboard.press("Home")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    assert page.locator(f"#host-1-tcp-{TLS_PORT} details").evaluate("d => d.open") is True
    # One row in the tab order at a time: the last one focused, however it was.
    page.locator("table.ports tbody tr").nth(2).focus()
    in_tab_order = page.locator("table.ports tbody tr[tabindex='0']")
    assert in_tab_order.count() == 1
    assert in_tab_order.get_attribute("id") == f"host-1-tcp-{SSH_PORT}"


def test_printed(page: Any) -> None:
    page.locator("input.filter").fill("ssh")
    page.emulate_media(media="print")
    assert page.locator(".toolbar").is_hidden()
    # Printed, every port shows whatever the screen's filter was.
    assert page.locator("table.ports tbody tr:visible").count() == 4
    page.evaluate("window.dispatchEvent(new Event('beforeprint'))")
    assert page.locator("details:not([open])").count() == 0
