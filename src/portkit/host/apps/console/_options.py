"""The options of a ``console`` application (apart, so the application module and the kind
can both import them)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from portkit.host._app import option

#: Shortest token accepted: a guessable token is no protection.
MIN_TOKEN = 16


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ConsoleOptions:
    """Options of a ``console`` application."""

    maildir: Path | None = option(
        None, help="the mail store to show (the smtp/pop3/imap maildir); none: no inbox"
    )
    token: str | None = option(
        None, help="required to listen beyond loopback: clients send it as a bearer token"
    )
    page_size: int = option(50, help="messages per inbox page", min=1, max=1000)
    scans: Path | None = option(
        None, help="a directory of saved scans (portkit scan -o json) to show at /scans"
    )
