"""A host with a web site, an smtp application and a console sharing its mail store."""

from __future__ import annotations

import asyncio
import json
import smtplib
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from portkit.host._host import Host
from portkit.host.apps.mail import hash_password
from tests.host._helpers import curl, running_host, url

FAST_HASH = {"n": 16, "r": 1, "p": 1}


def config_text(console_extra: str = "") -> str:
    users = json.dumps([f"demo:{hash_password('demo', **FAST_HASH)}"])
    return (
        '[apps.site]\nkind = "web"\nlisten = "127.0.0.1:0"\nroot = "site"\n\n'
        f'[apps.mail]\nkind = "smtp"\nlisten = "127.0.0.1:0"\nmaildir = "mail"\n'
        f'users = {users}\ncatch_all = "demo"\n\n'
        f'[apps.console]\nkind = "console"\nlisten = "127.0.0.1:0"\nmaildir = "mail"\n'
        f"{console_extra}"
    )


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[Host]:
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "index.html").write_text("<h1>hello</h1>\n")
    async with running_host(config_text(), tmp_path) as running:
        yield running


def message(
    subject: str = "Hello",
    *,
    sender: str = "Alice <alice@example.test>",
    to: str = "bob@example.test",
    text: str = "plain body\n",
    html: str | None = None,
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content(text)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    return msg


async def send(host: Host, msg: EmailMessage, app: str = "mail") -> None:
    """Send ``msg`` to the host's smtp application ``app`` with smtplib (in a thread)."""
    address, port = host.bound(app)[0]

    def run() -> None:
        with smtplib.SMTP(address, port, timeout=10) as client:
            client.send_message(msg)

    await asyncio.to_thread(run)


async def api(host: Host, path: str, *args: str) -> object:
    """GET (or, with curl ``args``, any request to) the console's ``path``; decoded JSON."""
    rc, out, err = await curl("-f", *args, url(host, "console", path))
    assert rc == 0, err
    return json.loads(out)
