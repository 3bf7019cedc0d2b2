"""Screenshots of the console for the documentation (docs/console-*.png).

Starts ``portkit serve`` with no configuration (the demo computer, console included),
sends a few messages with smtplib, makes some web and POP3 traffic, then photographs the
host view, the inbox and one message in headless Chromium. Loopback only.

    python scripts/console-screenshots.py [--out docs]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import poplib
import smtplib
import subprocess
import sys
import tempfile
import time
import urllib.request
from email.message import EmailMessage
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
CHROMIUM = "/usr/bin/chromium"
MAILS = [
    ("Build bot <ci@example.test>", "Nightly build #412 passed", "All 1,204 tests passed."),
    ("Alice Martin <alice@example.test>", "Lunch on Friday?", "The usual place at noon?"),
    ("Shop <no-reply@shop.example.test>", "Reset your password", "Click the link to reset."),
    ("Grafana <alerts@monitor.example.test>", "[FIRING] disk usage above 90% on db-1", "db-1: 91%"),
    ("Carol <carol@example.test>", "Quarterly report (draft)", "Attached, comments welcome."),
]


def start(tmp: Path) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    ready = tmp / "ready.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "portkit",
            "serve",
            "--ready-file",
            str(ready),
            "--status-file",
            str(tmp / "status.json"),
        ],
        env={**os.environ, "PYTHONPATH": str(SRC)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not ready.exists():
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise SystemExit("portkit serve did not start")
        time.sleep(0.05)
    doc = json.loads(ready.read_text())
    return proc, {a["name"]: a["listen"][0] for a in doc["apps"]}


def traffic(apps: dict[str, str]) -> None:
    host, port = apps["smtp"].rsplit(":", 1)
    for sender, subject, text in MAILS:
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = sender, "dev@example.test", subject
        msg.set_content(f"Hello,\n\n{text}\n")
        msg.add_alternative(
            f'<div style="font-family:sans-serif"><h2 style="color:#2f6fdf">{subject}</h2>'
            f'<p>{text}</p><p><img src="http://127.0.0.1:9/logo.png" alt="(remote logo)"></p></div>',
            subtype="html",
        )
        with smtplib.SMTP(host, int(port)) as client:
            client.send_message(msg)
    for _ in range(12):
        for path in ("/", "/login/"):
            with urllib.request.urlopen(f"http://{apps['web']}{path}") as response:
                response.read()
    with urllib.request.urlopen(f"http://{apps['video']}/") as response:
        response.read()
    host, port = apps["pop3"].rsplit(":", 1)
    pop = poplib.POP3(host, int(port))
    pop.user("demo")
    pop.pass_("demo")
    pop.quit()


async def shoot(console: str, out: Path) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        page = await browser.new_page(viewport={"width": 1280, "height": 860})
        await page.goto(f"http://{console}/")
        await asyncio.sleep(4)  # a few samples for the sparklines
        await page.screenshot(path=str(out / "console-host.png"), full_page=True)
        await page.goto(f"http://{console}/mail")
        await page.locator("tr[data-id]").first.wait_for()
        await page.keyboard.press("j")
        await page.screenshot(path=str(out / "console-inbox.png"))
        await page.get_by_role("link", name="Lunch on Friday?").click()
        await page.frame_locator("#html-frame").locator("h2").wait_for()
        await page.screenshot(path=str(out / "console-message.png"))
        await browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="portkit-shots-") as tmp:
        proc, apps = start(Path(tmp))
        try:
            traffic(apps)
            asyncio.run(shoot(apps["console"], args.out))
        finally:
            proc.terminate()
            proc.wait(30)


if __name__ == "__main__":
    main()
