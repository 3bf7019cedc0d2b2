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
from pathlib import Path

from portkit._errors import ConfigError
from portkit.host._app import Where, option
from portkit.host._tls import check_cert_key
from portkit.host.apps.mail._auth import LoginGuard, MailAccounts
from portkit.proto.sessions._line import MAX_BAD_COMMANDS

__all__ = [
    "ImapOptions",
    "MailOptions",
    "Pop3Options",
    "RetrievalOptions",
    "SmtpOptions",
    "accounts_of",
    "check",
]

_TLS_MODES = ("none", "starttls", "implicit")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class MailOptions:
    """Options every mail kind has."""

    maildir: Path = option(
        Path("mail"), help="the store: one Maildir per user under this directory"
    )
    users: tuple[str, ...] = option((), help="accounts as 'name:scrypt$...' (see hash-password)")
    domains: tuple[str, ...] = option(("localhost",), help="domains whose mail is delivered here")
    catch_all: str | None = option(None, help="development: deliver every recipient to this user")
    any_login: bool = option(
        False, help="development, loopback only: any user/password reads the catch-all mailbox"
    )
    postmaster: str | None = option(
        None, help="user receiving <Postmaster> mail (default: user postmaster, else the first)"
    )
    tls: str = option(
        "none", help="none, starttls (STARTTLS/STLS offered) or implicit (465/993/995)"
    )
    cert: Path | None = option(
        None, help="PEM certificate chain (default: a fresh self-signed one)"
    )
    key: Path | None = option(None, help="PEM private key (default: inside cert)")
    plaintext_login: bool = option(True, help="allow passwords over a connection without tls")
    idle_timeout: float = option(600.0, help="seconds a quiet client may stay connected", min=1)
    login_timeout: float = option(
        60.0, help="pop3/imap: seconds a client has to log in before it is dropped", min=1
    )
    max_connections: int = option(200, help="connections served at once; more are refused", min=1)
    max_connections_per_address: int = option(
        50, help="connections one client address may hold at once; more are refused", min=1
    )
    login_lockout_after: int = option(
        10, help="failed logins for one account from one address before lockout", min=1
    )
    login_lockout_address_after: int = option(
        30, help="failed logins for any accounts from one address before lockout", min=1
    )
    login_lockout_seconds: float = option(
        900.0, help="how long a locked-out address stays locked", min=0
    )
    login_delay: float = option(0.5, help="first delay after repeated failures (doubles)", min=0)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SmtpOptions(MailOptions):
    """Options of an ``smtp`` application (RFC 5321; submission RFC 6409)."""

    hostname: str = option("localhost", help="the name in the greeting and Received: headers")
    max_message_size: int = option(
        10 * 1024 * 1024, help="octets; announced as SIZE, larger is 552", min=1
    )
    max_recipients: int = option(100, help="RCPT TO per message; more get 452", min=1)
    max_line_length: int = option(
        1001, help="octets per line incl. CRLF (RFC 5321 4.5.3.1.6)", min=80
    )
    submission: bool = option(False, help="port 587 role: AUTH required, and only over tls")
    max_transfers: int = option(
        32, help="messages received (DATA) at once, each held in memory; more get 452", min=1
    )
    max_transfers_per_address: int = option(
        8, help="messages one client address may send (DATA) at once; more get 452", min=1
    )


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RetrievalOptions(MailOptions):
    """Options the ``pop3`` and ``imap`` kinds share: they send mail out, and read commands
    from clients that have not logged in yet."""

    send_timeout: float = option(
        60.0,
        help="pop3/imap: seconds a client may take nothing of an answer before it is dropped",
        min=0.01,
    )
    min_send_rate: float = option(
        0.0,
        help="pop3/imap: bytes/s a client must take of an answer, over each send-timeout",
        min=0,
    )
    max_bad_commands: int = option(
        MAX_BAD_COMMANDS,
        help="pop3/imap: invalid commands before login; the next one closes the connection",
        min=0,
    )


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Pop3Options(RetrievalOptions):
    """Options of a ``pop3`` application (RFC 1939)."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ImapOptions(RetrievalOptions):
    """Options of an ``imap`` application (RFC 3501)."""

    max_literal: int = option(
        1024 * 1024, help="largest literal accepted (bigger: BAD, never read)", min=1
    )
    max_command: int = option(
        2 * 1024 * 1024, help="octets of one command after login, literals included", min=1024
    )
    max_command_before_login: int = option(
        64 * 1024, help="octets of one command before login, literals included", min=1024
    )
    idle_poll: float = option(
        1.0, help="seconds between mailbox checks while a client IDLEs", min=0.01
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
        users=users,
        domains=frozenset(options.domains),
        catch_all=options.catch_all,
        postmaster=options.postmaster,
        any_login=options.any_login,
    )


def guard_of(options: MailOptions) -> LoginGuard:
    """The brute-force guard the options describe."""
    return LoginGuard(
        lockout_after=options.login_lockout_after,
        address_lockout_after=options.login_lockout_address_after,
        lockout=options.login_lockout_seconds,
        base_delay=options.login_delay,
        max_delay=max(options.login_delay * 16, options.login_delay),
    )


def check(options: MailOptions, where: Where) -> None:
    """Semantic checks shared by the three kinds (errors name the key)."""
    names = {entry.partition(":")[0] for entry in options.users}
    if options.any_login and options.catch_all is None:
        raise where.error("any-login", "needs catch-all: the mailbox every login opens")
    for key, user in (("catch-all", options.catch_all), ("postmaster", options.postmaster)):
        if user is not None and user not in names:
            raise where.error(key, f"{user!r} is not a configured user")
    try:
        accounts_of(options)
    except ConfigError as exc:
        raise where.error("users", str(exc)) from None
    if options.tls not in _TLS_MODES:
        raise where.error("tls", f"must be one of {', '.join(_TLS_MODES)}, not {options.tls!r}")
    if (options.cert or options.key) and options.tls == "none":
        raise where.error("cert" if options.cert else "key", "needs tls = starttls or implicit")
    check_cert_key(options.cert, options.key, where)
    if isinstance(options, SmtpOptions) and options.submission and options.tls == "none":
        raise where.error("submission", "submission needs tls (AUTH is only offered over tls)")
