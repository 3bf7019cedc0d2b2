"""web: static files over HTTP/1.1 (and HTTPS) on aiohttp.

Content types from a fixed table, ETag/Last-Modified with conditional requests and byte
ranges (aiohttp's FileResponse plus :mod:`._files` for multiple ranges), an optional
directory listing (off by default), HTTPS with a configured certificate or a self-signed
one made at start. Requests never leave the document root (see
:func:`portkit.host.apps._files.resolve_path`).

Hostile clients: a connection gets ``header_timeout`` seconds for its TLS handshake and for
each complete request head (counted from connect, or from the end of the previous
response), so a client trickling header bytes (slowloris) is cut off; a response must be
taken (acknowledged by the client's TCP) at ``min_send_rate`` with no gap longer than
``send_timeout``, or the connection is reset; ``max_requests`` caps keep-alive;
``max_connections`` bounds the connections served at once and ``per_source`` those of one
address (see :mod:`portkit.host._limits`), both counted as each connection arrives.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import socket
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from aiohttp import HttpVersion11, hdrs, web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_protocol import RequestHandler

from portkit.host._app import (
    BACKLOG,
    AppContext,
    Application,
    Counters,
    Kind,
    Listener,
    Where,
    admit,
    format_peer,
    option,
)
from portkit.host._limits import Admission, SendClock, Slot
from portkit.host.apps._files import Found, SmallFiles, directory_listing, lookup, serve_file
from portkit.host.apps._sockets import bytes_acked, reset

__all__ = ["KINDS", "WebApp", "WebKind", "WebOptions"]

#: Bounds of one request head (answered 400 beyond): the length of the request line and of
#: each field, and the number of fields. A head is held in memory until it is complete.
MAX_LINE = 8190
MAX_FIELDS = 128

#: How often a stopping application looks whether its last response has ended.
STOP_POLL = 0.05

#: Seconds a connection accepted just before a stop gets to send its first request head
#: (within the grace period): it may be on its way, and closing a connection with unread
#: data resets it, losing a request the client had every reason to think accepted.
FRESH_WAIT = 1.0


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class WebOptions:
    """Options of a ``web`` application."""

    root: Path = dataclasses.field(metadata={"help": "document root directory"})
    listing: bool = option(False, help="list directories that have no index file")
    index: tuple[str, ...] = option(("index.html",), help="index files of a directory, in order")
    hidden: bool = option(False, help="serve dot-files (names starting with '.')")
    tls: bool = option(False, help="serve HTTPS; self-signed certificate unless cert is set")
    cert: Path | None = option(None, help="PEM certificate chain (with tls = true)")
    key: Path | None = option(None, help="PEM private key (default: inside cert)")
    header_timeout: float = option(10.0, help="seconds to send a complete request head", min=0.01)
    keepalive_timeout: float = option(
        15.0, help="seconds an idle keep-alive connection stays", min=0
    )
    send_timeout: float = option(
        60.0, help="seconds a client may take nothing of a response before it is dropped", min=0.01
    )
    min_send_rate: float = option(
        0.0, help="bytes/s a client must take of a response, over each send_timeout", min=0
    )
    max_requests: int = option(
        1000, help="requests on one connection, then it closes (keep-alive cap)", min=1
    )
    max_connections: int = option(4096, help="connections served at once; more are refused", min=1)
    per_source: int | None = option(
        None, help="connections at once from one address; default: half of max_connections", min=1
    )
    workers: int | None = option(
        None,
        help="processes serving this application; default: one per CPU (1: the host's own)",
        min=1,
        max=256,
    )


class _AccessLogger(AbstractAccessLogger):
    """aiohttp's end-of-response hook: counters, the access log, the request-head clock.

    aiohttp instantiates the class itself, so :meth:`bind` makes a subclass that knows its
    application.
    """

    app: ClassVar[WebApp | None] = None

    @classmethod
    def bind(cls, app: WebApp) -> type[_AccessLogger]:
        return type("AccessLogger", (cls,), {"app": app})

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        app = type(self).app
        if app is not None:
            app.response_done(request, response, time)

    @property
    def enabled(self) -> bool:
        return True


class WebApp(Application):
    """Serves ``options.root`` on every listener."""

    def __init__(self, options: WebOptions, ctx: AppContext) -> None:
        super().__init__(ctx)
        self.options = options
        self.root = options.root.resolve()
        self._runner: web.ServerRunner | None = None
        self._transports: dict[RequestHandler, asyncio.Transport] = {}
        self._waiting: dict[RequestHandler, float] = {}  # handler -> since when, no request head
        self._sweeper: asyncio.Task[None] | None = None
        self.admission = Admission(options.max_connections, options.per_source)
        self._slots: dict[RequestHandler, Slot] = {}
        # Responses being sent: their send clock, or None until the sweep first samples it.
        self._clocks: dict[RequestHandler, SendClock | None] = {}
        self._ssl: Any = None  # made by prepare()
        self._requests: dict[RequestHandler, int] = {}  # requests served per connection
        self._stopping = False
        self.small_files = SmallFiles()
        self._turn: dict[str, Found | None] = {}  # lookups of this turn of the event loop

    # -- requests -------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        # The request head is complete: the header clock stops until this response is done.
        # (Done here rather than in a middleware: aiohttp rebuilds middleware chains per
        # request, which costs more than the whole bookkeeping.)
        self._waiting.pop(request.protocol, None)
        self._start_send_clock(request.protocol)
        # RFC 9112 section 6.1: Transfer-Encoding in an HTTP/1.0 message means its framing
        # cannot be trusted; answer, then close the connection whatever it asked for.
        faulty = request.version < HttpVersion11 and hdrs.TRANSFER_ENCODING in request.headers
        # A connection serves at most max_requests requests, then closes (as nginx's
        # keepalive_requests): one client cannot keep one connection, and its memory,
        # forever by never pausing.
        count = self._requests.get(request.protocol, 0) + 1
        self._requests[request.protocol] = count
        last = faulty or count >= self.options.max_requests or self._stopping
        try:
            response = await self.respond(request)
        except web.HTTPException as exc:
            if last:
                exc.force_close()
            raise
        except (ConnectionError, asyncio.CancelledError):
            raise  # the client went away, or the host is stopping: nothing to answer
        except Exception as exc:
            # aiohttp would answer 500 and log nowhere we show: say what went wrong here.
            self.ctx.logger.error(
                "%s: %s %s: 500: %r",
                request.remote,
                request.method,
                request.path,
                exc,
                exc_info=True,
            )
            raise web.HTTPInternalServerError() from exc
        if last:
            response.force_close()
        return response

    def response_done(
        self, request: web.BaseRequest, response: web.StreamResponse, elapsed: float
    ) -> None:
        """A response was sent completely (or its client went away): count and log it."""
        self._clocks.pop(request.protocol, None)
        if request.protocol in self._transports:
            # The next request head is due within header_timeout from now, not from when
            # this response began (a long download is not a slow client).
            self._waiting[request.protocol] = time.monotonic()
        counters = self.counters
        nbytes = response.body_length  # all bytes written, head included
        # The whole response, head and (chunked) body as written; bytes in are counted as
        # they arrive (_Handler.data_received).
        counters.bytes_out += request.writer.output_size
        if response.status >= 500:
            counters.errors += 1
        counters.changed()
        if not self.ctx.access_logger.handlers:
            return
        if self.ctx.access_format == "combined":
            self.ctx.access_logger.info("%s", combined_line(request, response))
        else:
            line = (
                f'"{request.method} {request.path_qs} HTTP/{request.version.major}.'
                f'{request.version.minor}" {response.status} {elapsed:.4f}s '
                f'"{request.headers.get(hdrs.USER_AGENT, "")}"'
            )
            self.ctx.access(request.remote or "?", line, nbytes=nbytes)

    async def respond(self, request: web.Request) -> web.StreamResponse:
        """The response to one GET/HEAD request."""
        if request.method not in (hdrs.METH_GET, hdrs.METH_HEAD):
            raise web.HTTPMethodNotAllowed(request.method, [hdrs.METH_GET, hdrs.METH_HEAD])
        url_path = request.path
        found = self._lookup(url_path)
        if found is None:
            raise web.HTTPNotFound()
        if not found.is_dir:
            return await serve_file(request, found.path, found.st, self.small_files)
        if not url_path.endswith("/"):
            raise web.HTTPMovedPermanently(
                location=request.rel_url.with_path(url_path + "/").raw_path_qs
            )
        if found.index is not None and found.index_st is not None:
            return await serve_file(request, found.index, found.index_st, self.small_files)
        return await self.directory(request, found)

    def _lookup(self, url_path: str) -> Found | None:
        """What ``url_path`` names now, looked up at most once per turn of the event loop.

        On the event loop, not in a thread: a few stat calls on a local file system take
        microseconds, the thread hop several times that (and caps requests/s; see
        docs/benchmarks.md). A root on a slow network file system would stall the loop.
        Requests that the loop takes up in the same turn arrived together and share one
        answer, as if served at the same instant; the next turn looks again, so a changed
        file is seen by the next request that arrives after the change.
        """
        turn = self._turn
        if url_path in turn:
            return turn[url_path]
        if not turn:
            asyncio.get_running_loop().call_soon(turn.clear)
        found = turn[url_path] = lookup(
            self.root, url_path, hidden=self.options.hidden, index_names=self.options.index
        )
        return found

    async def directory(self, request: web.Request, found: Found) -> web.StreamResponse:
        """A directory without an index file: listed if configured, else 403."""
        if not self.options.listing:
            raise web.HTTPForbidden(text="403: directory listing is off\n")
        return await asyncio.to_thread(
            directory_listing, self.root, found.path, request.path, hidden=self.options.hidden
        )

    # -- connections ----------------------------------------------------------------------

    def _on_connect(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        raw = transport.get_extra_info("peername")
        peer = (str(raw[0]), int(raw[1])) if raw else ("?", 0)
        slot = admit(self.admission, peer, self.ctx, stopping=False)
        if slot is None:
            self.counters.rejected += 1
            self.counters.changed()
            # Not at once: aiohttp starts the connection's task right after this hook, and
            # a connection already lost by then fails an assertion in it (a traceback per
            # refused client).
            asyncio.get_running_loop().call_soon(transport.abort)
            return
        self._transports[handler] = transport
        self._slots[handler] = slot
        self._waiting[handler] = time.monotonic()
        self.counters.opened()

    def _on_disconnect(self, handler: RequestHandler) -> None:
        if self._transports.pop(handler, None) is not None:
            self._waiting.pop(handler, None)
            self._clocks.pop(handler, None)
            self._requests.pop(handler, None)
            self._slots.pop(handler).release()
            self.counters.closed()

    def _start_send_clock(self, handler: RequestHandler) -> None:
        """A response begins: from now on the client must take it (send_timeout).

        The clock is set at the sweep's first look at the response, from what the client
        has acknowledged by then: a response finished before that (nearly all of them)
        never costs a ``TCP_INFO`` read. A client that takes nothing is dropped between
        ``send_timeout`` and ``send_timeout`` plus one sweep interval after its response
        began, which is the sweep's own granularity anyway.
        """
        if handler in self._transports:
            self._clocks[handler] = None

    async def _sweep(self) -> None:
        """Close connections that send no request head in time, or take no response."""
        timeout = self.options.header_timeout
        while True:
            await asyncio.sleep(min(1.0, timeout / 2, self.options.send_timeout / 2))
            now = time.monotonic()
            deadline = now - timeout
            for handler, since in list(self._waiting.items()):
                if since < deadline:
                    self._waiting.pop(handler, None)
                    # Not a reset: the end of the last response may still be on its way.
                    self._drop(handler, f"no request head in {timeout:.1f}s", hard=False)
            for handler, clock in list(self._clocks.items()):
                transport = self._transports.get(handler)
                acked = (
                    None if transport is None else bytes_acked(transport.get_extra_info("socket"))
                )
                if acked is None:  # no TCP_INFO here, so no send timeout either
                    continue
                if clock is None:
                    options = self.options
                    self._clocks[handler] = SendClock(
                        options.send_timeout, options.min_send_rate, now, acked
                    )
                elif clock.expired(now, acked):
                    self._clocks.pop(handler, None)
                    self._drop(
                        handler,
                        f"response not taken for {clock.timeout:.1f}s (send timeout)",
                        hard=True,
                    )

    def _drop(self, handler: RequestHandler, why: str, *, hard: bool) -> None:
        """Close a connection now; ``hard``: with a reset, dropping what was not sent."""
        transport = self._transports.get(handler)
        if transport is not None:
            peer = transport.get_extra_info("peername")
            self.ctx.logger.info("%s: %s, closing", format_peer(peer) if peer else "?", why)
            if hard:
                reset(transport)
            else:
                transport.abort()

    # -- lifecycle ------------------------------------------------------------------------

    def ssl_context(self) -> Any:
        if not self.options.tls:
            return None
        from portkit.host._tls import server_context

        return server_context(self.options.cert, self.options.key)

    def prepare(self) -> None:
        # The key may be readable by root only, and a self-signed certificate needs the
        # cryptography modules: both before privileges are dropped.
        self._ssl = self.ssl_context()

    async def start(self, listeners: Sequence[Listener]) -> None:
        # aiohttp's low-level server: every request goes to handle(), with no router and
        # no middleware chain in between (an Application's routing and handling took about
        # a sixth of a worker's time for a small file, for one catch-all route).
        server = web.Server(
            self.handle,  # type: ignore[arg-type]
            access_log_class=_AccessLogger.bind(self),
            keepalive_timeout=self.options.keepalive_timeout,
            max_line_size=MAX_LINE,
            max_field_size=MAX_LINE,
            max_headers=MAX_FIELDS,
        )
        runner = web.ServerRunner(server, handle_signals=False)
        await runner.setup()
        # Count connections and watch request heads: wrap the server's own hooks.
        made, lost = server.connection_made, server.connection_lost

        def connection_made(handler: RequestHandler, transport: asyncio.Transport) -> None:
            made(handler, transport)
            self._on_connect(handler, transport)

        def connection_lost(handler: RequestHandler, exc: BaseException | None = None) -> None:
            lost(handler, exc)
            self._on_disconnect(handler)

        setattr(server, "connection_made", connection_made)  # noqa: B010
        setattr(server, "connection_lost", connection_lost)  # noqa: B010
        if self.options.tls and self._ssl is None:
            self.prepare()  # started without the host (a test, a script)
        ssl_context = self._ssl
        for listener in listeners:
            site = _Site(
                runner,
                listener.sock,
                ssl_context=ssl_context,
                backlog=BACKLOG,
                handshake_timeout=self.options.header_timeout,
                counters=self.counters,
            )
            await site.start()
        self._runner = runner
        self._sweeper = asyncio.create_task(self._sweep())

    async def stop(self, grace: float) -> None:
        runner, self._runner = self._runner, None
        if runner is None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(grace, 0.0)
        self._stopping = True  # from now on every response closes its connection
        try:
            for site in list(runner.sites):
                await site.stop()
            # Requests in progress get `grace` seconds; a connection with none (idle
            # keep-alive, or its response just ended) closes at once, and one that has
            # not sent its first request head yet gets FRESH_WAIT seconds to send it.
            # aiohttp's own shutdown is not used for this: it waits the timeout once for
            # the handlers, then once more after asking them to stop (twice the grace
            # when a client does not read), and takes a timeout of 0 as "wait forever".
            while True:
                now = time.monotonic()
                for handler, since in list(self._waiting.items()):
                    transport = self._transports.get(handler)
                    young = self._requests.get(handler, 0) == 0 and now - since < FRESH_WAIT
                    if transport is not None and not transport.is_closing() and not young:
                        transport.close()
                busy = [
                    handler
                    for handler, transport in self._transports.items()
                    if not transport.is_closing()
                ]
                if not busy or loop.time() >= deadline:
                    break
                await asyncio.sleep(STOP_POLL)  # no event marks "the last response ended"
            left = [t for t in self._transports.values() if not t.is_closing()]
            if left:
                self.ctx.logger.info(
                    "%d connections still open after %.1fs grace: ending them", len(left), grace
                )
            for transport in list(self._transports.values()):
                reset(transport)  # grace is over: every handler's write fails at once
            runner._shutdown_timeout = STOP_POLL
            await runner.cleanup()
        finally:
            if self._sweeper is not None:
                self._sweeper.cancel()
            for transport in list(self._transports.values()):
                transport.abort()


class _Site(web.SockSite):
    """aiohttp's site on a bound socket, with a deadline for the TLS handshake.

    A TLS connection reaches the HTTP layer (and its limits and clocks) only once its
    handshake is done; until then asyncio's own deadline applies, 60 s by default, long
    enough for clients that never send a ClientHello to pile up. The handshake gets
    ``header_timeout`` instead, like a request head.
    """

    __slots__ = ("_counters", "_factory", "_handshake_timeout")

    def __init__(
        self,
        runner: web.BaseRunner,
        sock: Any,
        *,
        ssl_context: Any,
        backlog: int,
        handshake_timeout: float,
        counters: Counters,
    ) -> None:
        super().__init__(runner, sock, ssl_context=ssl_context, backlog=backlog)
        self._handshake_timeout = handshake_timeout
        self._counters = counters
        self._factory: Any = None

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with its runner
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()
        self._factory = factory = _handler_factory(server, self._counters)
        if self._ssl_context is None:
            self._server = await loop.create_server(factory, sock=self._sock, backlog=self._backlog)
        else:
            self._server = await loop.create_server(
                factory,
                sock=self._sock,
                ssl=self._ssl_context,
                backlog=self._backlog,
                ssl_handshake_timeout=self._handshake_timeout,
            )

    async def stop(self) -> None:
        """Close the listener without resetting the connections in its queue.

        The kernel completes handshakes before this process accepts them, and closing a
        listening socket resets every connection still queued: clients that had
        connected would lose their request. They are accepted first, the listener is
        closed, and each is then served like any other while the host stops (one
        response, then the connection closes).
        """
        queued = _take_queue(self._sock)
        await super().stop()
        loop = asyncio.get_running_loop()
        for conn in queued:
            # Each as a task of its own: a TLS handshake must not hold up the others.
            if self._ssl_context is None:
                start = loop.connect_accepted_socket(self._factory, conn)
            else:
                start = loop.connect_accepted_socket(
                    self._factory,
                    conn,
                    ssl=self._ssl_context,
                    ssl_handshake_timeout=self._handshake_timeout,
                )
            task = asyncio.ensure_future(start)
            task.add_done_callback(functools.partial(_close_unless_served, conn))


def _close_unless_served(conn: socket.socket, task: asyncio.Future[Any]) -> None:
    if task.cancelled() or task.exception() is not None:
        conn.close()  # gone meanwhile, or its TLS handshake failed


def _take_queue(sock: Any, most: int = BACKLOG) -> list[socket.socket]:
    """The connections waiting in listening socket ``sock``'s queue, accepted now."""
    queued: list[socket.socket] = []
    if not isinstance(sock, socket.socket):
        return queued
    while len(queued) < most:
        try:
            conn, _ = sock.accept()
        except OSError:  # BlockingIOError: the queue is empty
            break
        conn.setblocking(False)
        queued.append(conn)
    return queued


def _log_item(text: str) -> str:
    """``text`` for a quoted log field: ``"``, ``\\`` and bytes outside printable ASCII
    escaped (as Apache's httpd does), so a client cannot break or forge a line."""
    out = []
    for byte in text.encode("utf-8", "surrogateescape"):
        if byte in (0x22, 0x5C):
            out.append("\\" + chr(byte))
        elif 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        else:
            out.append(f"\\x{byte:02x}")
    return "".join(out)


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def combined_line(
    request: web.BaseRequest, response: web.StreamResponse, now: float | None = None
) -> str:
    """One line of the Combined Log Format (``host ident user [time] "request" status
    bytes "referer" "user-agent"``), as Apache's httpd and nginx write it by default.

    ``bytes`` is the body only (``-`` for none), the time local with its UTC offset in
    English month names, whatever the locale.
    """
    stamp = time.localtime(now)
    offset = stamp.tm_gmtoff // 60
    sign = "-" if offset < 0 else "+"
    when = (
        f"{stamp.tm_mday:02d}/{_MONTHS[stamp.tm_mon - 1]}/{stamp.tm_year}:"
        f"{stamp.tm_hour:02d}:{stamp.tm_min:02d}:{stamp.tm_sec:02d} "
        f"{sign}{abs(offset) // 60:02d}{abs(offset) % 60:02d}"
    )
    body = response.content_length
    if request.method == hdrs.METH_HEAD or response.status in (204, 304):
        body = 0
    version = f"HTTP/{request.version.major}.{request.version.minor}"
    target = _log_item(f"{request.method} {request.raw_path} {version}")
    referer = _log_item(request.headers.get(hdrs.REFERER, "-"))
    agent = _log_item(request.headers.get(hdrs.USER_AGENT, "-"))
    return (
        f'{request.remote or "-"} - - [{when}] "{target}" {response.status} '
        f'{body if body else "-"} "{referer}" "{agent}"'
    )


class _Handler(RequestHandler):
    """aiohttp's connection handler, counting bytes and answering a half-closed client.

    Counting: every byte of the connection, request heads and bodies in, response heads
    and bodies out (as ``--status`` reports them for the other kinds); for HTTPS, the bytes
    inside TLS.

    Half-close: ``printf 'HEAD / HTTP/1.0\\r\\n\\r\\n' | nc host 80`` sends its request,
    then shuts its side down (a FIN) and waits for the answer. aiohttp's handler lets
    asyncio close the connection at that FIN, so the request is dropped unanswered. A FIN
    only says that no more requests come (RFC 9112 section 9.6 lets either side close its
    half): the requests already received are answered, then the connection closes. With
    nothing pending, it closes at once, as before. (Under TLS, asyncio ends the connection
    at the peer's close regardless.)
    """

    __slots__ = ("_answered", "_counters", "_peer_done")

    def __init__(self, counters: Counters, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._counters = counters
        self._peer_done = False
        self._answered = 0  # responses finished (aiohttp's _request_count: requests parsed)

    def data_received(self, data: bytes) -> None:
        self._counters.bytes_in += len(data)
        super().data_received(data)

    def eof_received(self) -> bool:  # type: ignore[override]
        # Requests parsed and not yet answered (queued, or being answered). Counted rather
        # than read from aiohttp's state: after a response ends, aiohttp runs a while
        # before it waits for the next request, and a FIN in that moment, taken for a
        # request in progress, kept an idle connection half-closed until its keep-alive
        # timeout.
        pending = self._request_count > self._answered
        transport = self.transport
        if not pending or transport is None or transport.get_extra_info("sslcontext"):
            return False  # asyncio closes the transport
        self._peer_done = True
        return True  # keep the transport open for writing

    async def finish_response(
        self, request: web.BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        result = await super().finish_response(request, resp, start_time)
        self._answered += 1
        if self._peer_done and not self._messages:
            self.close()  # the last request is answered: no keep-alive after the FIN
        return result


def _handler_factory(server: Any, counters: Counters) -> Any:
    """A protocol factory like aiohttp's ``Server`` itself, making a :class:`_Handler`."""

    def make() -> RequestHandler:
        return _Handler(counters, server, loop=server._loop, **server._kwargs)

    return make


@dataclasses.dataclass(frozen=True, slots=True)
class WebKind:
    """The ``web`` kind."""

    name: str = "web"
    options: type[WebOptions] = WebOptions

    def check(self, options: WebOptions, where: Where) -> None:
        check_root(options.root, where)
        check_tls(options, where)

    def create(self, options: WebOptions, ctx: AppContext) -> Application:
        return WebApp(options, ctx)


def check_root(root: Path, where: Where) -> None:
    """The document root must be an existing directory."""
    if not root.is_dir():
        what = "does not exist" if not root.exists() else "is not a directory"
        raise where.error("root", f"directory {str(root)!r} {what}")


def check_tls(options: WebOptions, where: Where) -> None:
    """Certificate options need ``tls = true`` and existing, loadable files."""
    if (options.cert or options.key) and not options.tls:
        raise where.error("cert" if options.cert else "key", "needs tls = true")
    from portkit.host._tls import check_cert_key

    check_cert_key(options.cert, options.key, where)


KINDS: Mapping[str, Kind[Any]] = {"web": WebKind()}
