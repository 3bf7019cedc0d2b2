"""/scans: saved scans (a real `portkit scan -o json` of loopback) shown, escaped, filtered."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from portkit.host._host import Host
from tests.host._helpers import SRC, curl, parse_head, running_host, url
from tests.host.console.conftest import config_text
from tests.host.console.test_browser import CHROMIUM, CHROMIUM_ARGS

HAVE_CHROMIUM = Path(CHROMIUM).exists()


async def _scan(port: int, out: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "portkit", "scan", "127.0.0.1", "-p", str(port),
        "--detect", "-o", "json", "--output", str(out),
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert await proc.wait() == 0


async def _page(host: Host, path: str) -> tuple[int, bytes]:
    rc, out, err = await curl("-i", url(host, "console", path))
    assert rc == 0, err
    status, _, body = parse_head(out)
    return status, body


async def test_a_saved_scan_is_listed_and_shown(tmp_path: Path) -> None:
    (tmp_path / "site").mkdir()
    scans = tmp_path / "scans"
    scans.mkdir()
    text = config_text('scans = "scans"\n')
    async with running_host(text, tmp_path) as host:
        site_port = host.bound("site")[0][1]
        await _scan(site_port, scans / "loopback.json")
        doc = json.loads((scans / "loopback.json").read_text())
        hostile = json.loads(json.dumps(doc))
        port = hostile["hosts"][0]["ports"][0]
        port["expected"] = "ssh"
        port["identified"] = {"service": "http", "product": "<script>alert(1)</script>"}
        (scans / "hostile.json").write_text(json.dumps(hostile))
        (scans / "broken.json").write_text("{not json")
        (tmp_path / "secret.json").write_text(json.dumps(doc))

        status, body = await _page(host, "/scans")
        assert status == 200
        for name in (b"loopback.json", b"hostile.json", b"broken.json"):
            assert name in body
        status, body = await _page(host, "/scans/loopback.json")
        assert status == 200
        assert f"{site_port}/tcp".encode() in body
        assert b">http<" in body  # what answered: the web application, identified
        status, body = await _page(host, "/scans/hostile.json")
        assert b"<script>alert" not in body
        assert b"&lt;script&gt;alert(1)&lt;/script&gt;" in body
        assert b'class="unexpected"' in body  # http where the registry expects ssh
        status, body = await _page(host, "/scans/broken.json")
        assert status == 200
        assert b"is not JSON" in body
        for escape in ("/scans/..%2Fsecret.json", "/scans/%2e%2e%2fsecret.json", "/scans/x.txt"):
            status, _ = await _page(host, escape)
            assert status == 404, escape

        if HAVE_CHROMIUM:
            await _filter_and_sort(url(host, "console", "/scans/hostile.json"))


async def _filter_and_sort(page_url: str) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            await page.goto(page_url)
            rows = page.locator("#ports tbody tr")
            assert await rows.count() == 1
            await page.fill("#filter", "no-such-thing")
            assert await page.locator("#ports tbody tr:not([hidden])").count() == 0
            await page.fill("#filter", "tcp")
            assert await page.locator("#ports tbody tr:not([hidden])").count() == 1
            await page.locator("#ports th", has_text="Port").click()
            header = page.locator("#ports th", has_text="Port")
            assert await header.get_attribute("aria-sort") == "ascending"
            assert await page.evaluate("typeof window.alert_called") == "undefined"
        finally:
            await browser.close()
