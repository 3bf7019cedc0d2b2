"""The options of the ``smtp``, ``pop3`` and ``imap`` kinds (one TOML table each).

The three kinds share a store (``maildir``) and accounts (``users``, ``domains``,
``catch-all``); point them at the same directory and they serve the same mail::

    [apps.mail-in]
    kind = "smtp"
    listen = ["127.0.0.1:2525"]
    maildir = "mail"
    domains = ["example.test"]
    users = ["alice:scrypt$16384$8$1$...$..."]   # portkit.host.apps.mail.hash_password

    [apps.mail-pop3]
    kind = "pop3"
    listen = ["127.0.0.1:1110"]
    maildir = "mail"
    users = ["alice:scrypt$16384$8$1$...$..."]
"""

from __future__ import annotations

import dataclasses
import ssl
from pathlib import Path

from portkit._errors import ConfigError
from portkit.host._app import Where
from portkit.host._tls import server_context
from portkit.host.apps.mail._auth import LoginGuard, MailAccounts

__all__ = ["ImapOptions", "MailOptions", "Pop3Options", "SmtpOptions", "accounts_of", "check"]

_TLS_MODES = ("none", "starttls", "implicit")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class MailOptions:
    """Options every mail kind has."""

    maildir: Path = dataclasses.field(
        default=Path("mail"),
        metadata={"help": "the store: one Maildir per user under this directory"},
    )
    users: tuple[str, ...] = dataclasses.field(
        default=(), metadata={"help": "accounts as 'name:scrypt$...' (see hash-password)"}
    )
    domains: tuple[str, ...] = dataclasses.field(
        default=("localhost",), metadata={"help": "domains whose mail is delivered here"}
    )
    catch_all: str | None = dataclasses.field(
        default=None, metadata={"help": "development: deliver every recipient to this user"}
    )
    tls: str = dataclasses.field(
        default="none",
        metadata={"help": "none, starttls (STARTTLS/STLS offered) or implicit (465/993/995)"},
    )
    cert: Path | None = dataclasses.field(
        default=None, metadata={"help": "PEM certificate chain (default: a fresh self-signed one)"}
    )
    key: Path | None = dataclasses.field(
        default=None, metadata={"help": "PEM private key (default: inside cert)"}
    )
    plaintext_login: bool = dataclasses.field(
        default=True, metadata={"help": "allow passwords over a connection without tls"}
    )
    idle_timeout: float = dataclasses.field(
        default=600.0, metadata={"help": "seconds a quiet client may stay connected", "min": 1}
    )
    max_connections: int = dataclasses.field(
        default=200, metadata={"help": "connections served at once; more are refused", "min": 1}
    )
    login_lockout_after: int = dataclasses.field(
        default=10, metadata={"help": "failed logins per source before lockout", "min": 1}
    )
    login_lockout_seconds: float = dataclasses.field(
        default=900.0, metadata={"help": "how long a locked-out source stays locked", "min": 0}
    )
    login_delay: float = dataclasses.field(
        default=0.5, metadata={"help": "first delay after repeated failures (doubles)", "min": 0}
    )


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SmtpOptions(MailOptions):
    """Options of an ``smtp`` application (RFC 5321; submission RFC 6409)."""

    hostname: str = dataclasses.field(
        default="localhost", metadata={"help": "the name in the greeting and Received: headers"}
    )
    max_message_size: int = dataclasses.field(
        default=10 * 1024 * 1024,
        metadata={"help": "octets; announced as SIZE, larger is 552", "min": 1},
    )
    max_recipients: int = dataclasses.field(
        default=100, metadata={"help": "RCPT TO per message; more get 452", "min": 1}
    )
    max_line_length: int = dataclasses.field(
        default=1001,
        metadata={"help": "octets per line incl. CRLF (RFC 5321 4.5.3.1.6)", "min": 80},
    )
    submission: bool = dataclasses.field(
        default=False, metadata={"help": "port 587 role: AUTH required, and only over tls"}
    )


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Pop3Options(MailOptions):
    """Options of a ``pop3`` application (RFC 1939)."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ImapOptions(MailOptions):
    """Options of an ``imap`` application (RFC 3501)."""

    max_literal: int = dataclasses.field(
        default=1024 * 1024,
        metadata={"help": "largest literal accepted (bigger: BAD, never read)", "min": 1},
    )
    idle_poll: float = dataclasses.field(
        default=1.0,
        metadata={"help": "seconds between mailbox checks while a client IDLEs", "min": 0.01},
    )


def accounts_of(options: MailOptions) -> MailAccounts:
    """The accounts the options describe (raises ConfigError for bad entries)."""
    users: dict[str, str] = {}
    for entry in options.users:
        name, sep, encoded = entry.partition(":")
        if not sep:
            raise ConfigError(f"user entries look like 'name:scrypt$...', not {entry!r}")
        users[name] = encoded
    return MailAccounts(
        users=users, domains=frozenset(options.domains), catch_all=options.catch_all
    )


def guard_of(options: MailOptions) -> LoginGuard:
    """The brute-force guard the options describe."""
    return LoginGuard(
        lockout_after=options.login_lockout_after,
        lockout=options.login_lockout_seconds,
        base_delay=options.login_delay,
        max_delay=max(options.login_delay * 16, options.login_delay),
    )


def check(options: MailOptions, where: Where) -> None:
    """Semantic checks shared by the three kinds (errors name the key)."""
    try:
        accounts_of(options)
    except ConfigError as exc:
        raise where.error("users", str(exc)) from None
    if options.tls not in _TLS_MODES:
        raise where.error("tls", f"must be one of {', '.join(_TLS_MODES)}, not {options.tls!r}")
    if (options.cert or options.key) and options.tls == "none":
        raise where.error("cert" if options.cert else "key", "needs tls = starttls or implicit")
    if options.key is not None and options.cert is None:
        raise where.error("key", "needs cert as well")
    for key, path in (("cert", options.cert), ("key", options.key)):
        if path is not None and not path.is_file():
            raise where.error(key, f"file {str(path)!r} does not exist")
    if options.cert is not None:
        try:
            server_context(options.cert, options.key)
        except (ssl.SSLError, OSError) as exc:
            raise where.error("cert", f"cannot load certificate and key: {exc}") from None
    if isinstance(options, SmtpOptions) and options.submission and options.tls == "none":
        raise where.error("submission", "submission needs tls (AUTH is only offered over tls)")
