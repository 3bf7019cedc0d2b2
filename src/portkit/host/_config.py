"""The ``portkit serve`` configuration: a TOML file, validated whole before anything starts.

Layout::

    [host]                      # optional: settings of the host process
    user = "www-data"           # drop to this user after binding (when started as root)
    grace = 10.0                # seconds in-flight connections get on stop/reload
    status_file = "serve.json"  # where `portkit serve --status` looks
    access_log_dir = "logs"     # one <app>.log per application
    access_log_format = "portkit"  # or "combined": Combined Log Format for web/video

    [apps.site]                 # one table per application; the name is yours
    kind = "web"                # a kind from portkit.host.apps
    listen = ["127.0.0.1:8080", "[::1]:8080"]
    access_log = "site.log"     # optional, overrides access_log_dir
    access_log_format = "combined"  # optional, overrides [host] access_log_format
    root = "public"             # ... then the kind's own options

Every problem is one :class:`~portkit.ConfigError` reading ``FILE:LINE: [TABLE] KEY: what``.
:mod:`tomllib` reports no line numbers for keys, so :class:`_LineIndex` finds them in the
text itself (the table header's line when the key cannot be found, e.g. inline tables).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import socket
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from portkit._errors import ConfigError, EndpointError
from portkit.endpoint import host_port
from portkit.host._app import Kind, Where, option, parse_options
from portkit.host.apps import load_kind

__all__ = [
    "AppConfig",
    "HostConfig",
    "HostOptions",
    "ListenAddress",
    "load_config",
    "parse_config",
    "parse_listen",
    "what_changed",
]

#: Keys every application table has, whatever its kind.
COMMON_KEYS = ("kind", "listen", "access_log", "access_log_format")

#: ``access_log = "-"``: the access log goes to standard error.
STDERR = Path("-")

#: Access-log line formats: portkit's own (every kind), and the Combined Log Format
#: (Apache's and nginx's "combined", read by standard log tools) for the HTTP kinds.
ACCESS_LOG_FORMATS = ("portkit", "combined")
HTTP_KINDS = ("web", "video")

_APP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class HostOptions:
    """Settings of the host process (the ``[host]`` table)."""

    user: str | None = option(None, help="user to switch to after binding, when run as root")
    group: str | None = option(None, help="group to switch to (default: the user's group)")
    grace: float = option(10.0, help="seconds in-flight connections get to finish", min=0, max=3600)
    status_file: Path | None = option(None, help="status file read by `portkit serve --status`")
    access_log_dir: Path | None = option(
        None, help="directory for one <app>.log access log per application"
    )
    access_log_format: str = option(
        "portkit", help="portkit, or combined (Combined Log Format, for web and video)"
    )


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ListenAddress:
    """One address to listen on: an IP literal and a TCP port (0: any free port)."""

    host: str
    port: int
    text: str = dataclasses.field(compare=False)  # as written in the configuration

    @property
    def family(self) -> socket.AddressFamily:
        return socket.AF_INET6 if ":" in self.host else socket.AF_INET

    @property
    def is_wildcard(self) -> bool:
        return ipaddress.ip_address(self.host).is_unspecified

    def __str__(self) -> str:
        return host_port(self.host, self.port)

    def overlaps(self, other: ListenAddress) -> bool:
        """Whether both cannot be bound at once (same port, same or wildcard address)."""
        if self.port == 0 or other.port == 0 or self.port != other.port:
            return False
        if self.family != other.family:
            return False  # IPv6 sockets are bound IPV6_V6ONLY
        return self.host == other.host or self.is_wildcard or other.is_wildcard


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class AppConfig:
    """One application of the configuration, validated."""

    name: str
    kind: str
    listen: tuple[ListenAddress, ...]
    options: Any  # the kind's frozen options dataclass
    access_log: Path | None = None
    access_log_format: str | None = None  # None: the [host] setting


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class HostConfig:
    """A whole configuration, validated: host settings and applications in file order."""

    source: str  # the file name, for messages
    host: HostOptions
    apps: tuple[AppConfig, ...]

    def app(self, name: str) -> AppConfig:
        for app in self.apps:
            if app.name == name:
                return app
        raise KeyError(name)


class _LineIndex:
    """Find the line of a key of a table in TOML text (tomllib gives no positions)."""

    _HEADER = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(?:#.*)?$")
    _KEY = re.compile(r"""^\s*("[^"]*"|'[^']*'|[A-Za-z0-9_-]+)\s*(?:\.|=)""")

    def __init__(self, text: str) -> None:
        self.headers: dict[str, int] = {}
        self.keys: dict[tuple[str, str], int] = {}
        table = ""
        for number, line in enumerate(text.splitlines(), start=1):
            header = self._HEADER.match(line)
            if header:
                table = ".".join(_unquote(p.strip()) for p in header.group(1).split("."))
                self.headers.setdefault(table, number)
                continue
            key = self._KEY.match(line)
            if key:
                self.keys.setdefault((table, _unquote(key.group(1))), number)

    def line(self, table: str, key: str | None) -> int:
        if key is not None and (table, key) in self.keys:
            return self.keys[(table, key)]
        if table in self.headers:
            return self.headers[table]
        # "[apps]" + "site.kind = ..." style: fall back to the first key of the name.
        parent, _, leaf = table.rpartition(".")
        return self.keys.get((parent, leaf), 1)

    def where(self, file: str, table: str, base_dir: Path) -> Where:
        return Where(
            file=file, table=table, line_of=lambda key: self.line(table, key), base_dir=base_dir
        )


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


def parse_listen(text: str, where: Where, key: str = "listen") -> ListenAddress:
    """Parse one listen endpoint: ``PORT``, ``SERVICE``, ``HOST:PORT``, ``[V6]:PORT``.

    The text goes through :func:`portkit.endpoint.parse_endpoint` (service names come from
    the registry: ``127.0.0.1:http``). HOST must be an IP address or ``localhost``; no host
    means 127.0.0.1: listening on every interface is something the configuration must say
    (``0.0.0.0:80``, ``[::]:80``).
    """
    from portkit.endpoint import parse_endpoint

    raw = text.strip()
    if not raw:
        raise where.error(key, "empty listen address")
    if raw.isdigit() or (raw[:1].isalpha() and ":" not in raw):
        raw = f"127.0.0.1:{raw}"  # a bare port or service name: loopback by default
    try:
        endpoint = parse_endpoint(raw)
    except EndpointError as exc:
        raise where.error(key, str(exc)) from None
    if endpoint.form == "url":
        raise where.error(key, f"a listen address is HOST:PORT, not a URL: {text!r}")
    host = endpoint.host
    if host == "localhost":
        host = "127.0.0.1"
    elif endpoint.host_type not in ("ipv4", "ipv6"):
        raise where.error(
            key, f"listen host must be an IP address or localhost, not {host!r} in {text!r}"
        )
    return ListenAddress(host=host, port=endpoint.port, text=text)


def load_config(path: str | os.PathLike[str]) -> HostConfig:
    """Read and validate the configuration file at ``path``."""
    file = os.fspath(path)
    try:
        data = Path(file).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read configuration {file!r}: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{file}: not UTF-8 text") from None
    return parse_config(text, file=file, base_dir=Path(file).resolve().parent)


def parse_config(text: str, *, file: str = "<config>", base_dir: Path | None = None) -> HostConfig:
    """Validate configuration ``text``; relative paths are taken from ``base_dir``."""
    base = base_dir if base_dir is not None else Path.cwd()
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: invalid TOML: {exc}") from None
    lines = _LineIndex(text)
    top = lines.where(file, "", base)
    for key in doc:
        if key not in ("host", "apps"):
            raise top.error(key, "unknown top-level key (expected [host] and [apps.NAME] tables)")
    host_table = doc.get("host", {})
    host_where = lines.where(file, "host", base)
    if not isinstance(host_table, dict):
        raise top.error("host", "must be a table")
    host = parse_options(HostOptions, host_table, host_where)
    _check_access_format(host.access_log_format, None, host_where, "access_log_format")
    apps_table = doc.get("apps", {})
    if not isinstance(apps_table, dict):
        raise top.error("apps", "must be a table of applications, [apps.NAME]")
    apps: list[AppConfig] = []
    for name, table in apps_table.items():
        where = lines.where(file, f"apps.{name}", base)
        if not isinstance(table, dict):
            raise where.error(None, "an application must be a table")
        if not _APP_NAME.match(name):
            raise where.error(None, f"application names are letters, digits, - and _, not {name!r}")
        apps.append(_parse_app(name, table, where))
    if not apps:
        raise top.error(None, "no applications: add an [apps.NAME] table with kind and listen")
    _check_conflicts(apps, lines, file, base)
    return HostConfig(source=file, host=host, apps=tuple(apps))


def _parse_app(name: str, table: Mapping[str, Any], where: Where) -> AppConfig:
    kind_name = table.get("kind")
    if kind_name is None:
        raise where.error(None, "missing required key 'kind'")
    if not isinstance(kind_name, str):
        raise where.error("kind", f"must be a string, not {kind_name!r}")
    try:
        kind: Kind[Any] = load_kind(kind_name)
    except ConfigError as exc:
        raise where.error("kind", str(exc)) from None
    listen_raw = table.get("listen")
    if listen_raw is None:
        raise where.error(None, "missing required key 'listen'")
    if isinstance(listen_raw, str | int):
        listen_raw = [listen_raw]
    if not isinstance(listen_raw, list) or not listen_raw:
        raise where.error("listen", "must be an address or a list of addresses")
    listen: list[ListenAddress] = []
    for item in listen_raw:
        if isinstance(item, bool) or not isinstance(item, str | int):
            raise where.error("listen", f"must be an address like '127.0.0.1:8080', not {item!r}")
        address = parse_listen(str(item), where)
        for seen in listen:
            if address.overlaps(seen):
                raise where.error("listen", f"{address} is listed twice (overlaps {seen})")
        listen.append(address)
    access_raw = table.get("access_log", table.get("access-log"))
    access_log: Path | None = None
    if access_raw is not None:
        if not isinstance(access_raw, str) or not access_raw or "\x00" in access_raw:
            raise where.error("access_log", f"must be a file path, not {access_raw!r}")
        # "-": standard error, as for many tools (a path opened anew would not share the
        # offset of a standard error redirected to a file, and overwrite it).
        access_log = STDERR if access_raw == "-" else where.base_dir / Path(access_raw).expanduser()
    format_raw = table.get("access_log_format", table.get("access-log-format"))
    if format_raw is not None:
        _check_access_format(format_raw, kind_name, where, "access_log_format")
    kind_table = {k: v for k, v in table.items() if k.replace("-", "_") not in COMMON_KEYS}
    options = parse_options(kind.options, kind_table, where, also_known=COMMON_KEYS)
    kind.check(options, where)
    if getattr(options, "any_login", False):
        # Anyone who can connect reads the mail: only this computer may connect.
        for address in listen:
            if not ipaddress.ip_address(address.host).is_loopback:
                raise where.error("any_login", f"is for loopback addresses only, not {address}")
    return AppConfig(
        name=name,
        kind=kind_name,
        listen=tuple(listen),
        options=options,
        access_log=access_log,
        access_log_format=format_raw,
    )


def _check_access_format(value: object, kind: str | None, where: Where, key: str) -> None:
    if value not in ACCESS_LOG_FORMATS:
        raise where.error(key, f"must be one of {', '.join(ACCESS_LOG_FORMATS)}, not {value!r}")
    if value == "combined" and kind is not None and kind not in HTTP_KINDS:
        raise where.error(
            key, f"combined is a format of HTTP requests: web and video, not {kind!r}"
        )


def _check_conflicts(apps: list[AppConfig], lines: _LineIndex, file: str, base: Path) -> None:
    seen: list[tuple[ListenAddress, str]] = []
    for app in apps:
        for address in app.listen:
            for other, owner in seen:
                if owner != app.name and address.overlaps(other):
                    where = lines.where(file, f"apps.{app.name}", base)
                    raise where.error(
                        "listen", f"{address} is already used by [apps.{owner}] ({other})"
                    )
        seen.extend((address, app.name) for address in app.listen)


def what_changed(old: AppConfig, new: AppConfig) -> list[str]:
    """What differs between two versions of one application, for the reload log.

    The listen addresses with their values (``127.0.0.1:8080 -> 127.0.0.1:8081``); options
    by name only, since values can be long or secret (password hashes).
    """
    moved: list[str] = []
    if old.kind != new.kind:
        moved.append(f"kind {old.kind} -> {new.kind}")
    if old.listen != new.listen:
        before = ", ".join(str(a) for a in old.listen)
        after = ", ".join(str(a) for a in new.listen)
        moved.append(f"listen {before} -> {after}")
    if old.access_log != new.access_log or old.access_log_format != new.access_log_format:
        moved.append("access log")
    if old.kind == new.kind and old.options != new.options:
        names = [
            f.name.replace("_", "-")
            for f in dataclasses.fields(old.options)
            if getattr(old.options, f.name) != getattr(new.options, f.name)
        ]
        moved.append("options " + ", ".join(names))
    return moved
