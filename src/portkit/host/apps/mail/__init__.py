"""The mail applications: ``smtp`` in, ``pop3`` and ``imap`` out, one Maildir store.

Kinds for ``portkit serve`` (see :mod:`portkit.host.apps`), all three sharing a store and
accounts: point them at the same ``maildir`` and ``users``. Passwords in the configuration
are hashes made by :func:`hash_password`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from portkit.host._app import AppContext, Application, Kind, Where
from portkit.host.apps.mail._auth import LoginGuard, MailAccounts, hash_password, verify_password
from portkit.host.apps.mail._options import (
    ImapOptions,
    MailOptions,
    Pop3Options,
    SmtpOptions,
    check,
)
from portkit.host.apps.mail._retrieval import ImapApp, Pop3App
from portkit.host.apps.mail._smtp import SmtpApp, SmtpHandler
from portkit.host.apps.mail._store import Maildir, MaildirEntry, MaildirStore, MaildropLocked

__all__ = [
    "KINDS",
    "ImapApp",
    "ImapOptions",
    "LoginGuard",
    "MailAccounts",
    "MailOptions",
    "Maildir",
    "MaildirEntry",
    "MaildirStore",
    "MaildropLocked",
    "Pop3App",
    "Pop3Options",
    "SmtpApp",
    "SmtpHandler",
    "SmtpOptions",
    "hash_password",
    "verify_password",
]


@dataclasses.dataclass(frozen=True, slots=True)
class SmtpKind:
    """The ``smtp`` kind."""

    name: str = "smtp"
    options: type[SmtpOptions] = SmtpOptions

    def check(self, options: SmtpOptions, where: Where) -> None:
        check(options, where)

    def create(self, options: SmtpOptions, ctx: AppContext) -> Application:
        return SmtpApp(options, ctx)


@dataclasses.dataclass(frozen=True, slots=True)
class Pop3Kind:
    """The ``pop3`` kind."""

    name: str = "pop3"
    options: type[Pop3Options] = Pop3Options

    def check(self, options: Pop3Options, where: Where) -> None:
        check(options, where)

    def create(self, options: Pop3Options, ctx: AppContext) -> Application:
        return Pop3App(options, ctx)


@dataclasses.dataclass(frozen=True, slots=True)
class ImapKind:
    """The ``imap`` kind."""

    name: str = "imap"
    options: type[ImapOptions] = ImapOptions

    def check(self, options: ImapOptions, where: Where) -> None:
        check(options, where)

    def create(self, options: ImapOptions, ctx: AppContext) -> Application:
        return ImapApp(options, ctx)


KINDS: Mapping[str, Kind[Any]] = {"smtp": SmtpKind(), "pop3": Pop3Kind(), "imap": ImapKind()}
