"""The mail applications: ``smtp`` in, ``pop3`` and ``imap`` out, one Maildir store.

Kinds for ``portkit serve`` (see :mod:`portkit.host.apps`), all three sharing a store and
accounts: point them at the same ``maildir`` and ``users``. Passwords in the configuration
are hashes made by :func:`hash_password`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

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


_OptionsT = TypeVar("_OptionsT", bound=MailOptions)


@dataclasses.dataclass(frozen=True, slots=True)
class MailKind(Generic[_OptionsT]):
    """A mail kind (``smtp``, ``pop3``, ``imap``): its options, checked alike, and its app."""

    name: str
    options: type[_OptionsT]
    app: Callable[[_OptionsT, AppContext], Application]

    def check(self, options: _OptionsT, where: Where) -> None:
        check(options, where)

    def create(self, options: _OptionsT, ctx: AppContext) -> Application:
        return self.app(options, ctx)


KINDS: Mapping[str, Kind[Any]] = {
    kind.name: kind
    for kind in (
        MailKind("smtp", SmtpOptions, SmtpApp),
        MailKind("pop3", Pop3Options, Pop3App),
        MailKind("imap", ImapOptions, ImapApp),
    )
}
