"""The application interface: what a kind of server application gives the host.

``portkit serve`` hosts *applications* (a web site, an echo service, a POP3 server, ...),
each an instance of a *kind* (``web``, ``echo``, ``pop3``, ...). A kind is a small object
satisfying :class:`Kind`; the kind registry (:mod:`portkit.host.apps`) maps each kind name to
the module defining it, imported only when a configuration uses that kind.

The contract, in the order the host uses it::

    kind.options            a frozen dataclass type: the kind's option schema
    kind.check(opts, where) semantic checks (a directory exists, limits make sense)
    kind.create(opts, ctx)  -> Application          (no I/O yet)
    app.prepare()                                   (read keys; before privileges drop)
    await app.start(listeners)                      (serve on sockets the host bound)
    ... app.counters / ctx.access(...) while it runs ...
    await app.stop(grace)                           (stop accepting, drain, then abort)

Options. The kind declares its options as a frozen dataclass; each field is one key of the
application's TOML table (with ``-`` in TOML read as ``_``). :func:`parse_options` turns the
table into an instance, checking types (``str``, ``int``, ``float``, ``bool``,
:class:`pathlib.Path`, ``tuple[str, ...]``, ``tuple[int, ...]``, and ``X | None``),
rejecting unknown keys and requiring fields without defaults. Relative paths are taken
relative to the configuration file's directory. Field metadata may add ``min``/``max``
bounds and a ``help`` text for the reference documentation; :func:`option` declares a
field with a default that way (``option(10, help="...", min=1)``). Every error is a :class:`~portkit.ConfigError` naming the file, the line and
the key (see :meth:`Where.error`), raised before anything starts.

Sockets. The host binds (or inherits through socket activation) every listening socket
before any application starts, so an application never binds: :meth:`Application.start`
receives :class:`Listener` objects (a non-blocking, listening ``socket.socket`` plus the
endpoint text it was configured as) and serves on them, e.g. with
``asyncio.start_server(handler, sock=listener.sock)`` or ``loop.create_server(factory,
sock=...)``. The sockets handed over belong to the application, which closes them when it
stops (``asyncio.Server.close`` does); the host keeps its own duplicate of each (for reload
and socket activation), so an application never needs to worry about sharing them.

Stopping. ``stop(grace)`` must stop accepting at once, let in-flight connections finish for
up to ``grace`` seconds, then abort what is left and return. It is called on SIGTERM, on
SIGHUP for an application the new configuration removed or changed, and on shutdown.

Counters and access log. Each application owns a :class:`Counters` (connections open and
total, bytes in and out, errors); the host reads :meth:`Counters.snapshot` for
``portkit serve --status``. Access-log lines go through :meth:`AppContext.access`, which
writes one line per completed request/connection to the application's access logger
(``portkit.host.access.<name>``; the host attaches a file handler when configured).

Most kinds serve one byte stream per connection; :class:`StreamApplication` does the
bookkeeping (accept on every listener, count connections, track handler tasks, drain and
abort on stop) so a kind only writes ``async def handle(reader, writer, peer)``.
"""

from __future__ import annotations

import abc
import asyncio
import dataclasses
import logging
import math
import socket
import time
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from portkit._errors import ConfigError
from portkit.endpoint import host_port
from portkit.host._limits import Admission, Slot

__all__ = [
    "BACKLOG",
    "AppContext",
    "Application",
    "Counters",
    "CountersSnapshot",
    "Kind",
    "Listener",
    "StreamApplication",
    "Where",
    "admit",
    "finish_connections",
    "option",
    "parse_options",
]

log = logging.getLogger("portkit.host")

#: How long :class:`StreamApplication` waits for a handler to react to cancellation.
ABORT_WAIT = 2.0

#: The listen backlog of every listening socket. An application that serves on a socket
#: must pass it on (asyncio's ``create_server`` calls ``listen()`` again, with 100 by
#: default, and aiohttp with 128): a burst of connections beyond the backlog waits for
#: SYN retransmissions (1 s, 3 s, ...) instead of being accepted and judged at once.
BACKLOG = 1024

OptionsT = TypeVar("OptionsT")
_T = TypeVar("_T")
OptionsT_co = TypeVar("OptionsT_co", covariant=True)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Where:
    """Where an application's table lives in a configuration file, for error messages.

    ``line_of(key)`` returns the 1-based line of ``key`` inside the table (or of the table
    header when ``key`` is ``None`` or not found).
    """

    file: str
    table: str
    line_of: Callable[[str | None], int]
    base_dir: Path = Path()

    def error(self, key: str | None, message: str) -> ConfigError:
        """Return a ConfigError ``FILE:LINE: [TABLE] KEY: MESSAGE`` for ``key``."""
        line = self.line_of(key)
        prefix = f"{self.file}:{line}:" + (f" [{self.table}]" if self.table else "")
        return ConfigError(f"{prefix} {key}: {message}" if key else f"{prefix} {message}")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Listener:
    """A listening socket the host bound (or inherited) for an application."""

    sock: socket.socket
    endpoint: str  # as configured, e.g. "127.0.0.1:8080" or "[::1]:http"

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) actually bound (port 0 in the configuration becomes real here)."""
        name = self.sock.getsockname()
        return (str(name[0]), int(name[1]))


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class CountersSnapshot:
    """The counters of one application at one instant."""

    connections_open: int
    connections_total: int
    bytes_in: int
    bytes_out: int
    errors: int
    rejected: int


class Counters:
    """Live counters of one application; cheap to update from the event loop thread."""

    __slots__ = (
        "bytes_in",
        "bytes_out",
        "connections_open",
        "connections_total",
        "errors",
        "on_change",
        "rejected",
    )

    def __init__(self) -> None:
        self.connections_open = 0
        self.connections_total = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.errors = 0
        self.rejected = 0  # connections refused by a limit (instances, per_source, cps)
        #: Called by :meth:`changed` (a worker process publishes its counters with it).
        self.on_change: Callable[[Counters], None] | None = None

    def opened(self) -> None:
        self.connections_open += 1
        self.connections_total += 1
        self.changed()

    def closed(self) -> None:
        self.connections_open -= 1
        self.changed()

    def changed(self) -> None:
        """A connection or a response ended: tell whoever watches (see :attr:`on_change`)."""
        if self.on_change is not None:
            self.on_change(self)

    def snapshot(self) -> CountersSnapshot:
        return CountersSnapshot(
            connections_open=self.connections_open,
            connections_total=self.connections_total,
            bytes_in=self.bytes_in,
            bytes_out=self.bytes_out,
            errors=self.errors,
            rejected=self.rejected,
        )


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class AppContext:
    """What the host gives an application besides its options."""

    name: str  # the application's table name, e.g. "site" for [apps.site]
    kind: str
    counters: Counters
    logger: logging.Logger  # diagnostics: "portkit.host.app.<name>"
    access_logger: logging.Logger  # one line per request/connection
    access_format: str = "portkit"  # or "combined" (HTTP kinds): see _config.ACCESS_LOG_FORMATS

    def access(self, peer: str, message: str, *, nbytes: int | None = None) -> None:
        """Write one access-log line: ``<peer> <app> <message> [<nbytes>]``."""
        tail = f" {nbytes}" if nbytes is not None else ""
        self.access_logger.info("%s %s %s%s", peer, self.name, message, tail)

    @classmethod
    def for_app(
        cls,
        name: str,
        kind: str,
        counters: Counters | None = None,
        *,
        access_format: str = "portkit",
    ) -> AppContext:
        """A context with the standard loggers (tests use this to run an app without a host)."""
        return cls(
            name=name,
            kind=kind,
            access_format=access_format,
            counters=counters or Counters(),
            logger=logging.getLogger(f"portkit.host.app.{name}"),
            access_logger=logging.getLogger(f"portkit.host.access.{name}"),
        )


class Application(abc.ABC):
    """A running server application: started on bound sockets, stopped with a grace period."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    @property
    def counters(self) -> Counters:
        return self.ctx.counters

    def prepare(self) -> None:  # noqa: B027 (optional: most kinds have nothing to do)
        """Get ready to serve while the host still has its privileges (default: nothing).

        Called before :meth:`start`, and on the first start before privileges are
        dropped: read key files only root may read, import what serving needs.
        """

    @abc.abstractmethod
    async def start(self, listeners: Sequence[Listener]) -> None:
        """Begin serving on ``listeners``; return once accepting (do not block forever)."""

    @abc.abstractmethod
    async def stop(self, grace: float) -> None:
        """Stop accepting now, let connections finish for ``grace`` seconds, abort the rest."""


class Kind(Protocol[OptionsT]):
    """A kind of application: its name, option schema, checks and factory."""

    @property
    def name(self) -> str: ...

    @property
    def options(self) -> type[OptionsT]: ...

    def check(self, options: OptionsT, where: Where) -> None:
        """Raise ``where.error(key, ...)`` for options that are well-typed but wrong."""

    def create(self, options: OptionsT, ctx: AppContext) -> Application:
        """Build the application (no I/O; the host calls ``start`` later)."""


class StreamApplication(Application, Generic[OptionsT_co]):
    """An application that handles each connection as an asyncio stream pair.

    Subclasses implement :meth:`handle`; this class accepts on every listener, keeps the
    counters (open/total connections, handler errors), tracks handler tasks and, on
    :meth:`stop`, closes the servers, waits ``grace`` seconds, then cancels what is left.
    Byte counters are the subclass's job (it knows what it read and wrote).
    """

    #: Whether a handler that raises counts as an error (kinds may log and count themselves).
    count_handler_errors: ClassVar[bool] = True

    def __init__(self, options: OptionsT_co, ctx: AppContext) -> None:
        super().__init__(ctx)
        self.options = options
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False
        #: Connection limits (total and per source), checked and counted as each connection
        #: arrives; a subclass sets it from its options (None: no limit).
        self.admission: Admission | None = None

    def admit(self, peer: tuple[str, int]) -> bool:
        """Whether to serve a new connection from ``peer`` (limits); default: always."""
        return True

    def release(self, peer: tuple[str, int]) -> None:
        """Called when a connection admitted by :meth:`admit` ends."""

    @abc.abstractmethod
    async def handle(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str
    ) -> None:
        """Serve one connection; the caller closes ``writer`` afterwards."""

    async def start(self, listeners: Sequence[Listener]) -> None:
        for listener in listeners:
            server = await asyncio.start_server(
                self._on_connection, sock=listener.sock, backlog=BACKLOG
            )
            self._servers.append(server)

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        raw_peer = writer.get_extra_info("peername")
        peer_addr = (str(raw_peer[0]), int(raw_peer[1])) if raw_peer else ("?", 0)
        peer = format_peer(peer_addr)
        slot = admit(self.admission, peer_addr, self.ctx, stopping=self._stopping)
        if slot is None or not self.admit(peer_addr):
            if slot is not None:  # refused by the kind's own check
                slot.release()
                self.ctx.access(peer, "rejected")
            self.counters.rejected += 1
            writer.transport.abort()
            return
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.counters.opened()
        started = time.monotonic()
        try:
            await self.handle(reader, writer, peer)
        except asyncio.CancelledError:
            # Only stop() cancels these tasks, once the grace period is over. The task ends
            # normally: asyncio (3.11) logs a traceback for a stream handler task that
            # ends cancelled ("Exception in callback ... CancelledError").
            self.ctx.logger.debug("%s: ended by stop after the grace period", peer)
        except (ConnectionError, TimeoutError) as exc:
            self.ctx.logger.info("%s: %s", peer, exc or type(exc).__name__)
        except Exception:
            if self.count_handler_errors:
                self.counters.errors += 1
            self.ctx.logger.exception("%s: handler failed", peer)
        finally:
            self._tasks.discard(task)
            self.counters.closed()
            slot.release()
            self.release(peer_addr)
            if self._stopping:
                writer.transport.abort()
            else:
                writer.close()
            # A peer that reads nothing never lets a close flush: give it ABORT_WAIT.
            try:
                async with asyncio.timeout(ABORT_WAIT):
                    await writer.wait_closed()
            except (ConnectionError, TimeoutError, asyncio.CancelledError):
                writer.transport.abort()
            self.ctx.logger.debug("%s: closed after %.3fs", peer, time.monotonic() - started)

    async def stop(self, grace: float) -> None:
        self._stopping = True
        for server in self._servers:
            server.close()  # stop accepting; connections stay
        await finish_connections(self._tasks, grace, self.ctx.logger)
        self._servers.clear()


_UNLIMITED = Admission(2**62, 2**62)


def admit(
    admission: Admission | None, peer: tuple[str, int], ctx: AppContext, *, stopping: bool
) -> Slot | None:
    """A slot for a connection from ``peer``, or None (logged as refused, with why).

    Shared by every accept path; ``admission`` None means no limit (a slot is still handed
    out, so the caller's release path is the same).
    """
    if stopping:
        ctx.access(format_peer(peer), "rejected (stopping)")
        return None
    slot = (admission or _UNLIMITED).admit(peer[0])
    if slot is None and admission is not None:
        ctx.access(format_peer(peer), f"rejected: {admission.refusal(peer[0])}")
    return slot


async def finish_connections(
    tasks: set[asyncio.Task[None]], grace: float, logger: logging.Logger | None = None
) -> None:
    """Give connection ``tasks`` ``grace`` seconds to end, then cancel what is left.

    Cancelled tasks get :data:`ABORT_WAIT` seconds to unwind (close their transports);
    ``logger`` gets one line saying how many there were.
    """
    running = set(tasks)
    if not running:
        return
    _done, pending = await asyncio.wait(running, timeout=max(grace, 0.0))
    if pending and logger is not None:
        logger.info("%d connections still open after %.1fs grace: ending them", len(pending), grace)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=ABORT_WAIT)


def format_peer(addr: tuple[str, int]) -> str:
    """``1.2.3.4:5`` or ``[::1]:5``."""
    host, port = addr
    return host_port(host, port)


# ---------------------------------------------------------------------------------------
# Options: TOML table -> frozen dataclass, with errors naming file, line and key.


def option(
    default: _T,
    *,
    help: str,
    min: float | None = None,
    max: float | None = None,
) -> _T:
    """An options field with a default, its ``help`` text and optional ``min``/``max`` bounds.

    Fields without a default stay ``dataclasses.field(metadata={"help": ...})``, so that
    type checkers still see them as required.
    """
    metadata: dict[str, object] = {"help": help}
    if min is not None:
        metadata["min"] = min
    if max is not None:
        metadata["max"] = max
    field: _T = dataclasses.field(default=default, metadata=metadata)
    return field


def parse_options(
    cls: type[OptionsT],
    table: Mapping[str, Any],
    where: Where,
    *,
    also_known: tuple[str, ...] = (),
) -> OptionsT:
    """Build the options dataclass ``cls`` from an application's TOML table.

    Keys are matched to fields with ``-`` read as ``_``. Raises ConfigError (via ``where``)
    for unknown keys, missing required keys, wrong types and out-of-range numbers;
    ``also_known`` names keys handled elsewhere, listed in the unknown-key message.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for key, raw in table.items():
        name = key.replace("-", "_")
        if name not in fields:
            names = {k.replace("_", "-") for k in (*fields, *also_known)}
            known = ", ".join(sorted(names)) or "none"
            raise where.error(key, f"unknown key (known: {known})")
        f = fields[name]
        value = _convert(raw, hints[name], key, where)
        _check_bounds(value, f.metadata, key, where)
        values[name] = value
    for name, f in fields.items():
        missing = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if missing and name not in values:
            raise where.error(None, f"missing required key {name.replace('_', '-')!r}")
    return cls(**values)


def _type_name(tp: Any) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
    if tp in names:
        return names[tp]
    if tp is Path:
        return "a path (string)"
    if typing.get_origin(tp) is tuple:
        return f"a list of {_type_name(typing.get_args(tp)[0]).removeprefix('a ').removeprefix('an ')}s"
    return getattr(tp, "__name__", str(tp))


def _convert(raw: Any, tp: Any, key: str, where: Where) -> Any:
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if raw is None:
            return None
        return _convert(raw, args[0], key, where)
    if tp is bool:
        if isinstance(raw, bool):
            return raw
    elif tp is int:
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
    elif tp is float:
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            # TOML has nan and inf; no option means anything by them, and a nan compares
            # false with everything (a nan timeout never fires).
            if not math.isfinite(raw):
                raise where.error(key, f"must be a finite number, not {raw!r}")
            return float(raw)
    elif tp is str:
        if isinstance(raw, str):
            if "\x00" in raw:
                raise where.error(key, "must not contain a NUL character")
            return raw
    elif tp is Path:
        if isinstance(raw, str) and raw:
            if "\x00" in raw:
                raise where.error(key, "must not contain a NUL character")
            path = Path(raw).expanduser()
            return path if path.is_absolute() else where.base_dir / path
    elif origin is tuple:
        item_tp = typing.get_args(tp)[0]
        if isinstance(raw, str) and item_tp is str:
            raw = [raw]  # a single string where a list is expected: be kind
        if isinstance(raw, list):
            return tuple(_convert(item, item_tp, key, where) for item in raw)
    else:
        raise TypeError(f"unsupported option type {tp!r} for {key!r}")
    raise where.error(key, f"must be {_type_name(tp)}, not {raw!r}")


def _check_bounds(value: Any, meta: Mapping[str, Any], key: str, where: Where) -> None:
    items = value if isinstance(value, tuple) else (value,)
    for item in items:
        if not isinstance(item, int | float) or isinstance(item, bool):
            continue
        low, high = meta.get("min"), meta.get("max")
        if low is not None and item < low:
            raise where.error(key, f"must be at least {low}, not {item}")
        if high is not None and item > high:
            raise where.error(key, f"must be at most {high}, not {item}")
