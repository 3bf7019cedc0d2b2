"""The console with 10,000 messages in the store: page and API times, memory, SMTP intake.

One ``portkit serve`` process (an smtp application, a web application and the console
sharing one Maildir) is started on loopback ports; the store is filled with ``--messages``
messages first. Measured from this (separate) process over real HTTP:

- the first request after start (the console builds its listing index then);
- ``GET /mail`` (the inbox's first page, server-rendered) and ``GET /api/v1/messages``
  (50 per page, pages across the whole store), medians of ``--rounds`` requests, each paired
  with a request for a static file of the same size from the web application in the same
  process: the HTTP floor on this machine, so the ratio says what the console adds;
- search by a header field and by a body word;
- the server's resident memory after the index is built and after every request above
  (bounded: no request loads the store);
- SMTP intake (messages per second, smtplib, one connection per message) with nobody
  watching vs with a live inbox open (an event-stream client that fetches the inbox rows
  on every change, as the page does), alternating, medians of ``--intake-rounds`` pairs.

    python bench/console.py [--messages 10000] [--rounds 30] [--intake 200] [--json]
"""

from __future__ import annotations

import argparse
import email.policy
import http.client
import json
import os
import smtplib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

SRC = Path(__file__).resolve().parents[1] / "src"
sys.path.insert(0, str(SRC))

from portkit.host.apps.mail import Maildir, hash_password  # noqa: E402


def make_message(n: int) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Sender {n % 97} <sender{n % 97}@example.test>"
    msg["To"] = f"user{n % 13}@example.test"
    msg["Subject"] = f"Report number {n} for week {n % 52}"
    msg["Date"] = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(1.7e9 + n * 60))
    word = "needle" if n == 1234 else "hay"
    msg.set_content(
        f"Hello,\n\nthis is message {n}, about {word}.\n" + ("lorem ipsum " * 8 + "\n") * 10
    )
    msg.add_alternative(
        f"<p>This is message <b>{n}</b> about {word}.</p>" + "<p>lorem</p>\n" * 40, subtype="html"
    )
    return msg.as_bytes(policy=email.policy.SMTP)  # CRLF line ends, as SMTP carries them


def fill(maildir: Path, count: int) -> float:
    box = Maildir(maildir / "demo")
    box.ensure()
    started = time.perf_counter()
    for n in range(count):
        # Plain Maildir files with unique names, without deliver()'s fsyncs: the store's
        # format, filled in seconds rather than minutes.
        path = box.new / f"{1_700_000_000 + n}.M000000P0Q{n:06d}.bench"
        path.write_bytes(make_message(n))
        os.utime(path, (1.7e9 + n * 60, 1.7e9 + n * 60))
    return time.perf_counter() - started


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Client:
    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def get(self, path: str) -> tuple[float, bytes]:
        started = time.perf_counter()
        self.conn.request("GET", path)
        response = self.conn.getresponse()
        body = response.read()
        elapsed = time.perf_counter() - started
        if response.status != 200:
            raise RuntimeError(f"GET {path}: {response.status}")
        return elapsed, body


def start_serve(base: Path) -> tuple[subprocess.Popen[bytes], dict[str, int]]:
    users = json.dumps([f"demo:{hash_password('demo', n=16, r=1, p=1)}"])
    (base / "serve.toml").write_text(
        '[apps.site]\nkind = "web"\nlisten = "127.0.0.1:0"\nroot = "site"\n\n'
        f'[apps.mail]\nkind = "smtp"\nlisten = "127.0.0.1:0"\nmaildir = "mail"\n'
        f'users = {users}\ncatch_all = "demo"\n\n'
        '[apps.console]\nkind = "console"\nlisten = "127.0.0.1:0"\nmaildir = "mail"\n'
    )
    ready = base / "ready.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "portkit",
            "serve",
            str(base / "serve.toml"),
            "--ready-file",
            str(ready),
            "--status-file",
            str(base / "status.json"),
        ],
        env={**os.environ, "PYTHONPATH": str(SRC)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not ready.exists():
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise RuntimeError("portkit serve did not start")
        time.sleep(0.05)
    doc = json.loads(ready.read_text())
    ports = {a["name"]: int(a["listen"][0].rsplit(":", 1)[1]) for a in doc["apps"]}
    return proc, ports


def intake(port: int, count: int) -> float:
    """Messages per second through smtplib, one connection each."""
    msg = make_message(99999)
    started = time.perf_counter()
    for _ in range(count):
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            client.sendmail("a@example.test", ["demo@localhost"], msg)
    return count / (time.perf_counter() - started)


def live_inbox(port: int, stop: threading.Event) -> None:
    """What an open inbox page does: read the event stream, fetch the rows on each change."""
    stream = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    stream.request("GET", "/api/events")
    response = stream.getresponse()
    rows = Client(port)
    event = ""
    while not stop.is_set():
        line = response.fp.readline()
        if not line:
            break
        text = line.decode().strip()
        if text.startswith("event:"):
            event = text.split(":", 1)[1].strip()
        elif text.startswith("data:") and event == "mail":
            rows.get("/mail/rows?page=1")
    stream.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--intake", type=int, default=200)
    parser.add_argument("--intake-rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result: dict[str, Any] = {"messages": args.messages}
    with tempfile.TemporaryDirectory(prefix="portkit-bench-console-") as tmp:
        base = Path(tmp)
        (base / "site").mkdir()
        result["fill_s"] = round(fill(base / "mail", args.messages), 2)
        proc, ports = start_serve(base)
        try:
            console = Client(ports["console"])
            first, _ = console.get("/api/v1/messages?limit=50")
            result["first_request_ms"] = round(first * 1000, 1)
            result["rss_after_index_mb"] = round(rss_kb(proc.pid) / 1024, 1)
            _, page = console.get("/mail")
            (base / "site" / "page.html").write_bytes(page)
            _, api_page = console.get("/api/v1/messages?limit=50")
            (base / "site" / "api.json").write_bytes(api_page)
            site = Client(ports["site"])
            pages = max(1, args.messages // 50)
            rows: dict[str, list[float]] = {
                k: [] for k in ("mail", "mail_floor", "api", "api_floor")
            }
            for n in range(args.rounds):
                rows["mail"].append(console.get("/mail")[0])
                rows["mail_floor"].append(site.get("/page.html")[0])
                start = (n * 37 % pages) * 50
                rows["api"].append(console.get(f"/api/v1/messages?start={start}&limit=50")[0])
                rows["api_floor"].append(site.get("/api.json")[0])
            for key, values in rows.items():
                result[f"{key}_ms"] = round(statistics.median(values) * 1000, 2)
            result["mail_ratio"] = round(
                statistics.median(
                    a / b for a, b in zip(rows["mail"], rows["mail_floor"], strict=True)
                ),
                1,
            )
            result["api_ratio"] = round(
                statistics.median(
                    a / b for a, b in zip(rows["api"], rows["api_floor"], strict=True)
                ),
                1,
            )
            t, body = console.get("/api/v1/search?query=from:sender7%20subject:report")
            result["search_header_ms"] = round(t * 1000, 1)
            result["search_header_hits"] = json.loads(body)["messages_count"]
            t, body = console.get("/api/v1/search?query=needle")
            result["search_body_ms"] = round(t * 1000, 1)
            result["search_body_hits"] = json.loads(body)["messages_count"]
            result["rss_after_requests_mb"] = round(rss_kb(proc.pid) / 1024, 1)
            quiet: list[float] = []
            watched: list[float] = []
            for _ in range(args.intake_rounds):
                quiet.append(intake(ports["mail"], args.intake))
                stop = threading.Event()
                watcher = threading.Thread(
                    target=live_inbox, args=(ports["console"], stop), daemon=True
                )
                watcher.start()
                time.sleep(0.5)
                watched.append(intake(ports["mail"], args.intake))
                stop.set()
            result["intake_quiet_per_s"] = round(statistics.median(quiet), 1)
            result["intake_watched_per_s"] = round(statistics.median(watched), 1)
            result["intake_ratio"] = round(
                statistics.median(w / q for w, q in zip(watched, quiet, strict=True)), 3
            )
            result["rss_end_mb"] = round(rss_kb(proc.pid) / 1024, 1)
        finally:
            proc.terminate()
            proc.wait(30)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key:24} {value}")


if __name__ == "__main__":
    main()
