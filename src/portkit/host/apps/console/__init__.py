"""console: a web view of the host and an inbox of its mail store.

An application kind (``kind = "console"``) served by aiohttp, like ``web``:

- ``/``: the host view, this host's applications with their ports and live counters;
- ``/scans``: saved scans (``portkit scan -o json``) from a directory, as tables;
- ``/mail``: the inbox of the Maildir store the ``smtp``/``pop3``/``imap`` kinds share,
  ``/mail/view/{ID}`` one message (its HTML in a sandboxed frame);
- ``/api/v1/...``: an HTTP API shaped like Mailpit's, ``/api/host`` for the host view.

It listens on loopback unless a ``token`` is set (see :mod:`._web` for the security rules).
``portkit serve`` with no configuration runs one on 127.0.0.1:8025. See docs/console.md.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from portkit.host._app import AppContext, Application, Kind, Where
from portkit.host.apps.console._options import MIN_TOKEN, ConsoleOptions

__all__ = ["KINDS", "ConsoleKind", "ConsoleOptions"]


@dataclasses.dataclass(frozen=True, slots=True)
class ConsoleKind:
    """The ``console`` kind."""

    name: str = "console"
    options: type[ConsoleOptions] = ConsoleOptions

    def check(self, options: ConsoleOptions, where: Where) -> None:
        if options.token is not None and len(options.token) < MIN_TOKEN:
            raise where.error("token", f"must be at least {MIN_TOKEN} characters")
        if (
            options.maildir is not None
            and options.maildir.exists()
            and not options.maildir.is_dir()
        ):
            raise where.error("maildir", f"{str(options.maildir)!r} is not a directory")
        if options.scans is not None and not options.scans.is_dir():
            raise where.error("scans", f"{str(options.scans)!r} is not a directory")

    def create(self, options: ConsoleOptions, ctx: AppContext) -> Application:
        from portkit.host.apps.console._web import ConsoleApp

        return ConsoleApp(options, ctx)


KINDS: Mapping[str, Kind[Any]] = {"console": ConsoleKind()}
