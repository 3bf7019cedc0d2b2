"""The console's aiohttp application: pages, the Mailpit-shaped API, live events.

Security rules, all enforced in :func:`ConsoleApp.guard` before any handler runs:

- Without a ``token`` the console only listens on loopback (refused at start otherwise)
  and only answers requests whose ``Host`` is a loopback name or address, so a web page
  elsewhere cannot reach it through DNS rebinding.
- With a ``token``, every request carries it: ``Authorization: Bearer TOKEN``, or the cookie
  set by visiting ``/?token=TOKEN`` once (HttpOnly, SameSite=Strict).
- Changes are only ``PUT`` and ``DELETE`` (no form can send them across sites without a
  CORS preflight, which the console never grants), and a change whose ``Origin`` is not the
  console itself or whose ``Sec-Fetch-Site`` says another site is refused (403).
- Pages carry a Content-Security-Policy allowing only the console's own scripts and styles;
  every mail- or network-supplied string goes through Jinja2's HTML autoescaping. A
  message's HTML is served separately under a policy with no script at all, ``sandbox``,
  and no remote loads until the user asks for them (``?remote=1``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import hdrs, web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_protocol import RequestHandler

from portkit._errors import ConfigError, PortkitError
from portkit.host._app import AppContext, Application, Listener
from portkit.host.apps.console._hostview import History, find_host, host_document
from portkit.host.apps.console._mailindex import MailIndex, MessageMeta
from portkit.host.apps.console._message import attachment_bytes, parse_message
from portkit.host.apps.console._options import ConsoleOptions
from portkit.host.apps.console._scans import list_scans, load_scan, scan_path

__all__ = ["ConsoleApp"]

HERE = Path(__file__).parent
COOKIE = "portkit_console"
#: Seconds between looks at the store and counters for the live event stream.
TICK = 0.5
#: How old (seconds) a look at the store may be for a live view (events, rows).
LIVE_AGE = 0.25
API_PAGE_MAX = 1000
#: Characters of a text part shown on a message page (the API and raw download have all).
TEXT_PREVIEW = 1024 * 1024

PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
#: The policy of a message's HTML: no script ever; styles inline only; images embedded only.
MAIL_CSP = (
    "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:; "
    "form-action 'none'; base-uri 'none'; frame-ancestors 'self'"
)
#: The same after the user asked for remote content: images, styles and fonts from anywhere.
MAIL_CSP_REMOTE = (
    "sandbox; default-src 'none'; style-src 'unsafe-inline' http: https:; "
    "img-src data: http: https:; font-src data: http: https:; "
    "form-action 'none'; base-uri 'none'; frame-ancestors 'self'"
)

_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,  # every value is HTML-escaped unless a template says otherwise
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return str(n)


_ENV.filters["size"] = _size


def _render(template: str, /, **context: Any) -> web.Response:
    text = _ENV.get_template(template).render(**context)
    return web.Response(text=text, content_type="text/html", charset="utf-8")


def _is_loopback_host(host: str) -> bool:
    """Whether a Host header names this computer by a loopback name or address."""
    name = host.strip().lower()
    if name.startswith("["):
        name = name[1:].partition("]")[0]
    elif name.count(":") == 1:
        name = name.partition(":")[0]
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _int_arg(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name} must be a whole number, not {raw!r}\n") from None
    return min(max(value, low), high)


class _Counting(AbstractAccessLogger):
    """aiohttp's end-of-response hook, bound to one console: byte and error counters."""

    app: ConsoleApp | None = None

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        app = type(self).app
        if app is None:
            return
        counters = app.counters
        counters.bytes_out += response.body_length
        counters.bytes_in += request.content_length or 0
        if response.status >= 500:
            counters.errors += 1
        if app.ctx.access_logger.handlers:
            app.ctx.access(
                request.remote or "?",
                f'"{request.method} {request.path_qs}" {response.status}',
                nbytes=response.body_length,
            )

    @property
    def enabled(self) -> bool:
        return True


class ConsoleApp(Application):
    """The console on every listener."""

    def __init__(self, options: ConsoleOptions, ctx: AppContext) -> None:
        super().__init__(ctx)
        self.options = options
        self.index = MailIndex(options.maildir) if options.maildir is not None else None
        self.history = History()
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self._refreshing: asyncio.Lock | None = None
        self._refreshed: float | None = None  # time.monotonic() of the last refresh

    # -- guard ----------------------------------------------------------------------------

    @web.middleware
    async def guard(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        token = self.options.token
        if token is None:
            if not _is_loopback_host(request.host):
                raise web.HTTPMisdirectedRequest(text="this console answers loopback names only\n")
        else:
            given = request.cookies.get(COOKIE, "")
            auth = request.headers.get(hdrs.AUTHORIZATION, "")
            if auth.lower().startswith("bearer "):
                given = auth[7:].strip()
            query_token = request.query.get("token")
            if query_token is not None and request.method == hdrs.METH_GET:
                if not hmac.compare_digest(query_token.encode(), token.encode()):
                    raise web.HTTPUnauthorized(text="wrong token\n")
                # Trade the token in the URL for a cookie, and drop it from the address bar.
                rest = [(k, v) for k, v in request.query.items() if k != "token"]
                redirect = web.HTTPSeeOther(location=str(request.rel_url.with_query(rest)))
                redirect.set_cookie(COOKIE, token, httponly=True, samesite="Strict", path="/")
                raise redirect
            if not hmac.compare_digest(given.encode(), token.encode()):
                raise web.HTTPUnauthorized(
                    text="this console needs its token: open /?token=TOKEN once, "
                    "or send Authorization: Bearer TOKEN\n",
                    headers={hdrs.WWW_AUTHENTICATE: 'Bearer realm="portkit console"'},
                )
        if request.method not in (hdrs.METH_GET, hdrs.METH_HEAD, hdrs.METH_OPTIONS):
            site = request.headers.get("Sec-Fetch-Site")
            if site is not None and site not in ("same-origin", "none"):
                raise web.HTTPForbidden(text=f"cross-site change refused ({site})\n")
            origin = request.headers.get(hdrs.ORIGIN)
            if origin is not None and origin != f"{request.scheme}://{request.host}":
                raise web.HTTPForbidden(text=f"change from another origin refused: {origin!r}\n")
        response = await handler(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("Content-Security-Policy", PAGE_CSP)
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    def _page(self, template: str, /, **context: Any) -> web.Response:
        """A page, with the navigation knowing which parts this console has."""
        context.setdefault("has_mail", self.index is not None)
        context["has_scans"] = self.options.scans is not None
        return _render(template, **context)

    # -- mail helpers ---------------------------------------------------------------------

    def _need_index(self) -> MailIndex:
        if self.index is None:
            raise web.HTTPNotFound(text="this console has no mail store (set maildir)\n")
        return self.index

    async def refresh(self, max_age: float = 0.0) -> MailIndex:
        """The mail index, brought up to date; a live view accepts one ``max_age`` s old.

        The first refresh reads every message's headers and runs in a thread. Later ones
        run here, on the event loop: they list directories and read only new arrivals, and
        in a thread they would be slower for everyone, since ``os.listdir`` gives the
        interpreter lock up and takes it back for every name (10,000 times per mailbox),
        each time waiting for the event loop thread.
        """
        index = self._need_index()
        if self._refreshing is None:
            self._refreshing = asyncio.Lock()
        async with self._refreshing:
            now = time.monotonic()
            if self._refreshed is None:
                await asyncio.to_thread(index.refresh)
            elif now - self._refreshed >= max_age:
                index.refresh()
            else:
                return index
            self._refreshed = now
        return index

    async def _mark_read(self, request: web.Request, meta: MessageMeta) -> MessageMeta:
        """Mark a message read when the user looked at it (not when a mail's image did)."""
        if request.headers.get("Sec-Fetch-Site", "none") not in ("same-origin", "none"):
            return meta
        marked = await asyncio.to_thread(self._need_index().set_read, meta.id, True)
        return marked or meta

    async def _message(self, request: web.Request) -> MessageMeta:
        index = await self.refresh()
        meta = index.get(request.match_info["id"])
        if meta is None:
            raise web.HTTPNotFound(text=f"no message {request.match_info['id']!r}\n")
        return meta

    # -- pages ----------------------------------------------------------------------------

    async def page_host(self, request: web.Request) -> web.StreamResponse:
        doc = host_document(find_host(self.ctx), self.history)
        return self._page(
            "host.html",
            doc=doc,
            active="host",
            has_mail=self.index is not None,
            has_scans=self.options.scans is not None,
        )

    def _scans_dir(self) -> Path:
        if self.options.scans is None:
            raise web.HTTPNotFound(text="this console shows no scans (set scans)\n")
        return self.options.scans

    async def page_scans(self, request: web.Request) -> web.StreamResponse:
        directory = self._scans_dir()
        files = await asyncio.to_thread(list_scans, directory)
        return self._page(
            "scans.html",
            files=files,
            directory=str(directory),
            active="scans",
            has_mail=self.index is not None,
            has_scans=True,
        )

    async def page_scan(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        path = scan_path(self._scans_dir(), name)
        if path is None:
            raise web.HTTPNotFound(text=f"no saved scan {name!r}\n")
        context: dict[str, Any] = {"name": name, "active": "scans", "has_scans": True}
        context["has_mail"] = self.index is not None
        try:
            header, rows = await asyncio.to_thread(load_scan, path)
        except PortkitError as exc:
            return self._page("scan.html", error=str(exc), **context)
        unexpected = sum(1 for r in rows if r.unexpected)
        return self._page(
            "scan.html", error=None, header=header, rows=rows, unexpected=unexpected, **context
        )

    async def page_mail(self, request: web.Request) -> web.StreamResponse:
        if self.index is None:
            return self._page("nomail.html", active="mail", has_mail=False)
        return await self._inbox(request, "mail.html")

    async def page_rows(self, request: web.Request) -> web.StreamResponse:
        """The inbox table's rows alone, for the page's live updates."""
        # Asked for right after an event told of new mail: the event's look is recent enough.
        return await self._inbox(request, "rows.html", max_age=LIVE_AGE)

    async def _inbox(
        self, request: web.Request, template: str, *, max_age: float = 0.0
    ) -> web.StreamResponse:
        index = await self.refresh(max_age)
        size = self.options.page_size
        page = _int_arg(request, "page", 1, 1, 1_000_000)
        query = request.query.get("q", "").strip()
        if query:
            total, messages = await asyncio.to_thread(index.search, query, (page - 1) * size, size)
        else:
            total, messages = index.page((page - 1) * size, size)
        return self._page(
            template,
            messages=messages,
            total=total,
            unread=index.unread,
            page=page,
            pages=max(1, math.ceil(total / size)),
            query=query,
            generation=index.generation,
            active="mail",
            has_mail=True,
        )

    async def page_message(self, request: web.Request) -> web.StreamResponse:
        meta = await self._message(request)
        parsed = await asyncio.to_thread(parse_message, meta.path)
        await self._mark_read(request, meta)
        return self._page(
            "message.html",
            m=meta,
            p=parsed,
            text_limit=TEXT_PREVIEW,
            active="mail",
            has_mail=True,
        )

    async def message_html(self, request: web.Request) -> web.StreamResponse:
        meta = await self._message(request)
        parsed = await asyncio.to_thread(parse_message, meta.path)
        remote = request.query.get("remote") == "1"
        return web.Response(
            text=parsed.html or "",
            content_type="text/html",
            charset="utf-8",
            headers={
                "Content-Security-Policy": MAIL_CSP_REMOTE if remote else MAIL_CSP,
                "X-Frame-Options": "SAMEORIGIN",
            },
        )

    async def message_part(self, request: web.Request) -> web.StreamResponse:
        meta = await self._message(request)
        try:
            index = int(request.match_info["part"])
        except ValueError:
            raise web.HTTPNotFound() from None
        found = await asyncio.to_thread(attachment_bytes, meta.path, index)
        if found is None:
            raise web.HTTPNotFound(text="no such attachment\n")
        filename, data = found
        # Always a download, never rendered here: an attached HTML file must not run
        # in the console's origin.
        response = web.Response(body=data, content_type="application/octet-stream")
        response.headers[hdrs.CONTENT_DISPOSITION] = (
            f"attachment; filename*=UTF-8''{_quote(filename)}"
        )
        return response

    # -- API (Mailpit-shaped) -------------------------------------------------------------

    async def api_messages(self, request: web.Request) -> web.StreamResponse:
        index = await self.refresh()
        start = _int_arg(request, "start", 0, 0, 1 << 31)
        limit = _int_arg(request, "limit", 50, 1, API_PAGE_MAX)
        total, messages = index.page(start, limit)
        return self._listing(index, total, start, messages)

    async def api_search(self, request: web.Request) -> web.StreamResponse:
        index = await self.refresh()
        query = request.query.get("query", "")
        if not query.strip():
            raise web.HTTPBadRequest(text="query is empty\n")
        start = _int_arg(request, "start", 0, 0, 1 << 31)
        limit = _int_arg(request, "limit", 50, 1, API_PAGE_MAX)
        total, messages = await asyncio.to_thread(index.search, query, start, limit)
        return self._listing(index, total, start, messages)

    def _listing(
        self, index: MailIndex, total: int, start: int, messages: Sequence[MessageMeta]
    ) -> web.Response:
        return web.json_response(
            {
                "total": index.total,
                "unread": index.unread,
                "messages_count": total,
                "count": len(messages),
                "start": start,
                "messages": [m.as_json() for m in messages],
            }
        )

    async def api_message(self, request: web.Request) -> web.StreamResponse:
        meta = await self._message(request)
        parsed = await asyncio.to_thread(parse_message, meta.path)
        doc = (await self._mark_read(request, meta)).as_json()
        doc.update(
            {
                "Text": parsed.text or "",
                "HTML": parsed.html or "",
                "Headers": [{"Name": n, "Value": v} for n, v in parsed.headers],
                "Attachments": [
                    {
                        "PartID": str(a.index),
                        "FileName": a.filename,
                        "ContentType": a.content_type,
                        "Size": a.size,
                    }
                    for a in parsed.attachments
                ],
            }
        )
        return web.json_response(doc)

    async def api_raw(self, request: web.Request) -> web.StreamResponse:
        meta = await self._message(request)
        response = web.FileResponse(meta.path)
        response.content_type = "text/plain"
        return response

    async def _ids(self, request: web.Request) -> tuple[list[str] | None, dict[str, Any]]:
        if not request.can_read_body:
            return None, {}
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            raise web.HTTPBadRequest(text="the body is not JSON\n") from None
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(text='the body must be a JSON object like {"IDs": [...]}\n')
        ids = body.get("IDs")
        if ids is None:
            return None, body
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise web.HTTPBadRequest(text="IDs must be a list of message IDs\n")
        return ids, body

    async def api_delete(self, request: web.Request) -> web.StreamResponse:
        index = await self.refresh()
        ids, _ = await self._ids(request)
        if ids is not None and not ids:
            raise web.HTTPBadRequest(text="IDs is empty: omit it to delete every message\n")
        deleted = await asyncio.to_thread(index.delete, ids)
        return web.json_response({"deleted": deleted})

    async def api_set_read(self, request: web.Request) -> web.StreamResponse:
        index = await self.refresh()
        ids, body = await self._ids(request)
        read = body.get("Read")
        if not isinstance(read, bool):
            raise web.HTTPBadRequest(text='Read must be true or false, as in {"Read": true}\n')
        targets = ids if ids is not None else [m.id for m in index.page(0, index.total)[1]]
        changed = 0
        for ident in targets:
            if await asyncio.to_thread(index.set_read, ident, read) is not None:
                changed += 1
        return web.json_response({"changed": changed})

    async def api_host(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(host_document(find_host(self.ctx), self.history))

    # -- live events ----------------------------------------------------------------------

    async def events(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: ``host`` (counters) each second, ``mail`` on any change."""
        response = web.StreamResponse(
            headers={hdrs.CONTENT_TYPE: "text/event-stream", hdrs.CACHE_CONTROL: "no-store"}
        )
        await response.prepare(request)
        generation = -1
        tick = 0
        with contextlib.suppress(ConnectionError):
            while not self._stopping.is_set():
                if self.index is not None:
                    index = await self.refresh(LIVE_AGE)
                    if index.generation != generation:
                        generation = index.generation
                        data = {
                            "generation": generation,
                            "total": index.total,
                            "unread": index.unread,
                        }
                        await response.write(_event("mail", data))
                if tick % 2 == 0:
                    doc = host_document(find_host(self.ctx), self.history)
                    await response.write(_event("host", doc))
                tick += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), TICK)
        return response

    async def _sample(self) -> None:
        while True:
            host = find_host(self.ctx)
            if host is not None:
                self.history.sample(host.status())
            await asyncio.sleep(1.0)

    # -- lifecycle ------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/", self.page_host)
        r.add_get("/mail", self.page_mail)
        r.add_get("/mail/rows", self.page_rows)
        r.add_get("/mail/view/{id}", self.page_message)
        r.add_get("/mail/view/{id}/html", self.message_html)
        r.add_get("/mail/view/{id}/part/{part}", self.message_part)
        r.add_get("/api/host", self.api_host)
        r.add_get("/api/events", self.events)
        r.add_get("/api/v1/messages", self.api_messages)
        r.add_delete("/api/v1/messages", self.api_delete)
        r.add_put("/api/v1/messages", self.api_set_read)
        r.add_get("/api/v1/message/{id}", self.api_message)
        r.add_get("/api/v1/message/{id}/raw", self.api_raw)
        r.add_get("/api/v1/search", self.api_search)
        r.add_get("/scans", self.page_scans)
        r.add_get("/scans/{name}", self.page_scan)
        r.add_static("/static/", HERE / "static", follow_symlinks=False)

    async def start(self, listeners: Sequence[Listener]) -> None:
        if self.options.token is None:
            for listener in listeners:
                host, _port = listener.address
                if not ipaddress.ip_address(host.partition("%")[0]).is_loopback:
                    raise ConfigError(
                        f"[apps.{self.ctx.name}] listens on {listener.endpoint}, beyond "
                        "loopback: set token to allow that"
                    )
        app = web.Application(middlewares=[self.guard], client_max_size=1024 * 1024)
        self.routes(app)
        counting = type("Counting", (_Counting,), {"app": self})
        runner = web.AppRunner(app, access_log_class=counting, handle_signals=False)
        await runner.setup()
        server = runner.server
        assert server is not None
        made, lost = server.connection_made, server.connection_lost

        def connection_made(handler: RequestHandler, transport: Any) -> None:
            made(handler, transport)
            self.counters.opened()

        def connection_lost(handler: RequestHandler, exc: BaseException | None = None) -> None:
            lost(handler, exc)
            self.counters.closed()

        setattr(server, "connection_made", connection_made)  # noqa: B010
        setattr(server, "connection_lost", connection_lost)  # noqa: B010
        for listener in listeners:
            await web.SockSite(runner, listener.sock).start()
        self._runner = runner
        self._tasks.append(asyncio.create_task(self._sample()))
        if self.index is not None:
            # Build the index now, not on the first visit to the inbox.
            self._tasks.append(asyncio.create_task(self._warm()))

    async def _warm(self) -> None:
        try:
            await self.refresh()
        except Exception:  # the first request will try again, and show the error then
            self.ctx.logger.exception("cannot read the mail store %s", self.options.maildir)

    async def stop(self, grace: float) -> None:
        self._stopping.set()  # live event streams end now
        runner, self._runner = self._runner, None
        for task in self._tasks:
            task.cancel()
        if runner is not None:
            runner._shutdown_timeout = grace
            await runner.cleanup()


def _event(name: str, data: Any) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _quote(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")
