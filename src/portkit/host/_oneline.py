"""Configurations made from command-line flags: ``portkit serve DIR`` and ``serve --mail``.

``portkit serve DIR`` is the habit of ``python -m http.server``: one web application for
DIR on port 8000, or on the next free port when 8000 is taken (the port actually used is
printed). ``--port N`` asks for N and nothing else; ``--bind ADDR`` chooses the address
(127.0.0.1 by default: listening on every interface is something to say, ``--bind 0.0.0.0``);
``--tls`` serves HTTPS with a fresh self-signed certificate.

``portkit serve --mail`` is a development mail sink (the MailHog/Mailpit role): SMTP, POP3,
IMAP (and the web console, where that kind exists) on 127.0.0.1 only, every recipient delivered to one mailbox, which any user name
and password opens (``dev``/``dev`` will do). Its store is a temporary directory deleted on exit, unless
``--maildir PATH`` keeps it.

Both are written as configuration text and read by :func:`~portkit.host._config.parse_config`,
so they are checked exactly like a file the user wrote.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import socket
from pathlib import Path

from portkit._errors import UsageError
from portkit.endpoint import host_port
from portkit.host._config import HostConfig, parse_config
from portkit.host.apps import KIND_MODULES

__all__ = [
    "DIRECTORY_PORT",
    "MAIL_PORTS",
    "MAIL_USER",
    "directory_app",
    "first_free_port",
    "mail_apps",
    "oneline_config",
]

#: ``python -m http.server``'s port.
DIRECTORY_PORT = 8000

#: How many ports after the preferred one are tried before the kernel picks one.
PORT_TRIES = 100

#: The mail sink's ports: the development alternates of 25, 110 and 143.
MAIL_PORTS: dict[str, int] = {"smtp": 2525, "pop3": 1110, "imap": 1143}

#: The mail console's port, where that kind exists: Mailpit's and MailHog's web port.
CONSOLE_PORT = 8025

#: The mail sink's account, which receives every recipient.
MAIL_USER = "dev"


def _can_bind(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
        return True


def first_free_port(host: str, preferred: int, *, taken: tuple[int, ...] = ()) -> int:
    """``preferred`` if it can be bound on ``host``, else the next free one after it.

    After :data:`PORT_TRIES` taken ports, 0: the kernel picks one when the host binds.
    Another program may take the port between this look and the bind; the bind then fails
    with an error naming the address, as for a configured port.
    """
    for port in range(preferred, min(preferred + PORT_TRIES, 65536)):
        if port not in taken and _can_bind(host, port):
            return port
    return 0


def _listen(host: str, port: int) -> str:
    return host_port(host, port)


def _check_bind(bind: str) -> str:
    text = bind.strip().removeprefix("[").removesuffix("]")
    if text == "localhost":
        return "127.0.0.1"
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise UsageError(f"--bind needs an IP address, not {bind!r}") from None


def directory_app(
    root: Path,
    *,
    port: int | None,
    bind: str = "127.0.0.1",
    tls: bool = False,
    log_requests: bool = True,
) -> str:
    """The ``[apps.files]`` table serving ``root`` (``port`` None: 8000 or the next free).

    ``log_requests``: one line per request on stderr, in the Combined Log Format, as
    ``python -m http.server`` and nginx show them.
    """
    host = _check_bind(bind)
    chosen = first_free_port(host, DIRECTORY_PORT) if port is None else port
    access = 'access_log = "-"\naccess_log_format = "combined"\n' if log_requests else ""
    return (
        f'[apps.files]\nkind = "web"\nlisten = {json.dumps(_listen(host, chosen))}\n'
        f"root = {json.dumps(str(root.resolve()))}\nlisting = true\n"
        f"tls = {'true' if tls else 'false'}\n{access}"
    )


def mail_apps(maildir: Path, *, taken: tuple[int, ...] = ()) -> str:
    """The ``[apps.smtp]``, ``[apps.pop3]`` and ``[apps.imap]`` tables of the mail sink."""
    from portkit.host.apps.mail import hash_password

    users = json.dumps([f"{MAIL_USER}:{hash_password(MAIL_USER)}"])
    tables = []
    used = list(taken)
    for kind, preferred in MAIL_PORTS.items():
        port = first_free_port("127.0.0.1", preferred, taken=tuple(used))
        used.append(port)
        tables.append(
            f'[apps.{kind}]\nkind = "{kind}"\nlisten = "127.0.0.1:{port}"\n'
            f"maildir = {json.dumps(str(maildir))}\nusers = {users}\n"
            f'catch_all = "{MAIL_USER}"\nany_login = true\n'
        )
    if "console" in KIND_MODULES:
        # The web view of the mail (Mailpit's port, 8025), where the console kind exists.
        port = first_free_port("127.0.0.1", CONSOLE_PORT, taken=tuple(used))
        tables.append(
            f'[apps.console]\nkind = "console"\nlisten = "127.0.0.1:{port}"\n'
            f"maildir = {json.dumps(str(maildir))}\n"
        )
    return "\n".join(tables)


def oneline_config(
    *,
    directory: Path | None,
    port: int | None,
    bind: str | None,
    tls: bool,
    mail: bool,
    maildir: Path | None,
    log_requests: bool = True,
) -> HostConfig:
    """The configuration the flags describe (``maildir`` must be given with ``mail``).

    ``--port``, ``--bind`` and ``--tls`` are the directory's; the mail sink is always on
    127.0.0.1, since anyone who can reach it can read what it holds.

    Raises:
        UsageError: a flag that does not fit (``--bind`` not an address, ``--port`` with
            no directory).
        ConfigError: what the configuration check finds.
    """
    tables = ["[host]\ngrace = 2\n"]
    used: tuple[int, ...] = ()
    if directory is None:
        for flag, value in (("--port", port), ("--bind", bind), ("--tls", tls or None)):
            if value is not None:
                raise UsageError(f"{flag} is for serving a directory: portkit serve DIR {flag}")
    else:
        tables.append(
            directory_app(
                directory,
                port=port,
                bind=bind or "127.0.0.1",
                tls=tls,
                log_requests=log_requests,
            )
        )
        used = (port or DIRECTORY_PORT,)
    if mail:
        if maildir is None:
            raise UsageError("the mail sink needs a store directory")
        tables.append(mail_apps(maildir, taken=used))
    text = "\n".join(tables)
    return parse_config(text, file="<command line>", base_dir=Path.cwd())
