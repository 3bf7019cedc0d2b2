"""The console in real headless Chromium: live inbox, message view, hostile mail, counters."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from portkit.host._host import Host
from tests.host._helpers import curl, url
from tests.host.console.conftest import message, send

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Generous upper bounds for the browser to catch up (not timing assertions).
WAIT_MS = 10_000

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="needs Chromium at /usr/bin/chromium"
)


@pytest.fixture
async def page(host: Host) -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield await browser.new_page()
        finally:
            await browser.close()


async def test_new_mail_appears_in_the_inbox_without_reload(host: Host, page: Any) -> None:
    await page.goto(url(host, "console", "/mail"))
    await page.locator("p.empty").wait_for()
    await page.evaluate("window.sameDocument = true")
    await send(host, message("Arrives live", text="live body\n"))
    row = page.locator("tr[data-id]", has_text="Arrives live")
    await row.wait_for(timeout=WAIT_MS)
    assert await page.evaluate("window.sameDocument") is True  # no reload happened
    assert "Alice <alice@example.test>" in await row.locator("td.from").inner_text()
    assert "unread" in (await row.get_attribute("class") or "")


async def test_opening_a_message_shows_its_body(host: Host, page: Any) -> None:
    await send(host, message("Open me", text="the text part\n", html="<p id=b>the html part</p>"))
    await page.goto(url(host, "console", "/mail"))
    await page.get_by_role("link", name="Open me").click()
    await page.locator("h1#subject", has_text="Open me").wait_for()
    frame = page.frame_locator("#html-frame")
    await frame.locator("p#b", has_text="the html part").wait_for(timeout=WAIT_MS)
    await page.get_by_role("tab", name="Text").click()
    assert await page.locator("#tab-text pre").inner_text() == "the text part\n"


async def test_keyboard_opens_the_selected_message(host: Host, page: Any) -> None:
    await send(host, message("Older"))
    await send(host, message("Newer"))
    await page.goto(url(host, "console", "/mail"))
    await page.locator("tr[data-id]").first.wait_for()
    await page.keyboard.press("j")
    await page.keyboard.press("j")  # second row: the older message
    await page.keyboard.press("Enter")
    await page.locator("h1#subject", has_text="Older").wait_for(timeout=WAIT_MS)


async def test_hostile_mail_runs_nothing(host: Host, page: Any) -> None:
    # What reached the server (a request the policy blocks gets no response).
    requests: list[str] = []
    page.on("response", lambda response: requests.append(response.url))
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    hostile = (
        "<p id=x>look</p>"
        "<script>parent.hacked = 1; fetch('/pwned-script');</script>"
        "<img src=/nothing onerror=\"parent.hacked = 2; new Image().src='/pwned-onerror'\">"
        "<a id=js href=\"javascript:parent.hacked=3;fetch('/pwned-link')\">click me</a>"
        "<style>body { background: url(/pwned-css) }</style>"
        '<meta http-equiv="refresh" content="0;url=/pwned-refresh">'
    )
    subject = "<img src=/s onerror=\"window.hacked=4;fetch('/pwned-subject')\">"
    await send(host, message(subject, html=hostile))
    await page.goto(url(host, "console", "/mail"))
    await page.locator("tr[data-id]").first.wait_for()
    await page.locator("tr[data-id] td.subject a").click()
    frame = page.frame_locator("#html-frame")
    await frame.locator("p#x").wait_for(timeout=WAIT_MS)
    await frame.locator("a#js").click()
    await asyncio.sleep(1.0)  # give anything that could run the time to run
    assert await page.evaluate("typeof window.hacked") == "undefined"
    assert [r for r in requests if "pwned" in r or r.endswith("/nothing")] == []
    # Remote content on request: the stylesheet's image loads; still no script runs.
    await page.get_by_role("button", name="Load remote content").click()
    await frame.locator("a#js").click()
    await asyncio.sleep(1.0)
    assert await page.evaluate("typeof window.hacked") == "undefined"
    assert [r for r in requests if "pwned" in r and not r.endswith("/pwned-css")] == []
    assert dialogs == []
    assert await page.locator("h1#subject").inner_text() == subject  # shown as text


async def test_counters_on_the_host_view_rise_after_requests(host: Host, page: Any) -> None:
    await page.goto(url(host, "console", "/"))
    total = page.locator('article[data-app="site"] dd[data-c="connections_total"]')
    before = int(await total.inner_text())
    for _ in range(3):
        rc, _, _ = await curl(url(host, "site", "/"))
        assert rc == 0
    await page.wait_for_function(
        "(before) => Number(document.querySelector("
        '\'article[data-app="site"] dd[data-c="connections_total"]\').textContent) >= before + 3',
        arg=before,
        timeout=WAIT_MS,
    )
    out = page.locator('article[data-app="site"] dd[data-c="bytes_out"]')
    assert await out.inner_text() != "0 B"
    assert await page.locator('article[data-app="mail"] .port.alt').count() == 1
