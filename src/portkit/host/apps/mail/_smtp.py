"""The smtp kind: aiosmtpd speaks SMTP; this module decides what is accepted and stores it.

Policy (RFC 5321 and RFC 6409 for submission):

- Recipients are routed by :class:`~portkit.host.apps.mail.MailAccounts`: a local domain's
  users, or everything to the catch-all user in development. Any other domain is relaying
  and refused with ``550 5.7.1``; more than ``max_recipients`` gets ``452 4.5.3``.
- SIZE is announced and enforced by aiosmtpd (``552``, nothing stored); lines longer than
  ``max_line_length`` are refused with ``500`` (RFC 5321 4.5.3.1.6).
- ``250`` is sent only after every copy is fsynced and renamed into ``new/``
  (:meth:`MaildirStore.deliver`); a failed store answers ``451`` and keeps nothing.
- ``submission = true`` (port 587): MAIL needs AUTH, and AUTH is only offered over TLS.
- Values the client chooses that end up in the stored message (HELO/EHLO name, MAIL FROM,
  RCPT TO) must not carry CR, LF, NUL or other controls: RFC 5321 4.1.2 allows none, and a
  bare CR copied into ``Received:`` would start a header the client forged. They are
  refused with ``501``/``553``, and escaped again when the trace headers are written.
- ``<Postmaster>`` without a domain is accepted (RFC 5321 4.5.1), see
  :meth:`MailAccounts.route`.
- One client address holds at most ``max_connections_per_address`` connections, and sends
  at most ``max_transfers_per_address`` messages at once (``max_transfers`` for all): a
  message is held in memory until it is stored, so these bound what DATA can take. Both
  are counted by :class:`~portkit.host._limits.Admission`, per source (an IPv4 address,
  an IPv6 /64).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import email.utils
import re
import secrets
import ssl
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, AnyStr

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session, syntax

from portkit.host._app import AppContext, Application, Listener, admit, format_peer
from portkit.host._limits import Admission, Slot
from portkit.host._tls import server_context
from portkit.host.apps.mail._auth import MailAccounts, shown
from portkit.host.apps.mail._options import SmtpOptions, accounts_of, guard_of
from portkit.host.apps.mail._store import MaildirStore

__all__ = ["SmtpApp", "SmtpHandler"]

# Named replies with enhanced status codes (RFC 3463).
R_OK_RCPT = "250 2.1.5 recipient ok"
R_ACCEPTED = "250 2.0.0 message accepted for delivery as %s"
R_RELAY_DENIED = "550 5.7.1 relaying denied: %s is not a domain served here"
R_NO_USER = "550 5.1.1 no such user here: %s"
R_TOO_MANY_RCPT = "452 4.5.3 too many recipients"
R_STORE_FAILED = "451 4.3.0 local error storing the message, try again later"
R_NO_RCPT = "554 5.5.1 no valid recipients"
R_TOO_BUSY = "421 4.3.2 too many connections, try again later"
R_TOO_BUSY_ADDRESS = "421 4.7.0 too many connections from your address, try again later"
R_BAD_HELO = "501 5.5.4 %s name must not contain control characters"
R_BAD_ADDRESS = "553 5.1.3 address must not contain control characters"
R_MAIL_OK = "250 2.1.0 sender ok"
R_TOO_MANY_TRANSFERS = "452 4.3.1 too many messages in transfer, try again later"

_CONTROLS = re.compile(r"[\x00-\x1f\x7f]")


def _has_controls(value: str) -> bool:
    return _CONTROLS.search(value) is not None


def _header_safe(value: str) -> str:
    """``value`` with every control character escaped, fit to copy into a header field."""
    return _CONTROLS.sub(lambda m: f"\\x{ord(m.group()):02x}", value)


def _source(peer: Any) -> str:
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return "unknown"


def _peer(peer: Any) -> tuple[str, int]:
    if isinstance(peer, tuple) and len(peer) >= 2:
        return (str(peer[0]), int(peer[1]))
    return ("unknown", 0)


class SmtpHandler:
    """aiosmtpd handler hooks: recipient policy and durable delivery."""

    def __init__(
        self, store: MaildirStore, accounts: MailAccounts, options: SmtpOptions, ctx: AppContext
    ) -> None:
        self.store = store
        self.accounts = accounts
        self.options = options
        self.ctx = ctx
        # Deliveries wait on fsync, not on the CPU: as many at once as messages may be in
        # transfer, so that those arriving together share fsyncs (the store's group
        # commit) instead of queueing for asyncio's few default worker threads.
        self.executor = ThreadPoolExecutor(
            max_workers=min(options.max_transfers, 64), thread_name_prefix="portkit-smtp-store"
        )

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        if _has_controls(address):
            return R_BAD_ADDRESS
        # With this hook in place aiosmtpd leaves the envelope to it.
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return R_MAIL_OK

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if _has_controls(address):
            return R_BAD_ADDRESS
        if len(envelope.rcpt_tos) >= self.options.max_recipients:
            return R_TOO_MANY_RCPT
        if self.accounts.route(address) is None:
            domain = address.rpartition("@")[2]
            if not self.accounts.is_local_domain(domain):
                return R_RELAY_DENIED % domain
            return R_NO_USER % address
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return R_OK_RCPT

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        users = [u for u in (self.accounts.route(r) for r in envelope.rcpt_tos) if u]
        if not users:
            return R_NO_RCPT
        queue_id = secrets.token_hex(6)
        content = envelope.original_content or b""
        data = self._trace(server, session, envelope, queue_id) + content
        peer = format_peer((_source(session.peer), int(session.peer[1]) if session.peer else 0))
        try:
            # fsync is slow and blocking: off the event loop, so other sessions go on.
            await asyncio.get_running_loop().run_in_executor(
                self.executor, self.store.deliver, users, data
            )
        except OSError as exc:
            self.ctx.logger.error("%s: storing message failed: %s", peer, exc)
            self.ctx.counters.errors += 1
            return R_STORE_FAILED
        self.ctx.access(
            peer,
            f"{queue_id} from=<{_header_safe(envelope.mail_from or '')}> to={','.join(users)}",
            nbytes=len(content),
        )
        return R_ACCEPTED % queue_id

    def _trace(self, server: SMTP, session: Session, envelope: Envelope, queue_id: str) -> bytes:
        # RFC 5321 4.4: the delivering server adds Return-Path; every server adds Received.
        protocol = "ESMTP" if session.extended_smtp else "SMTP"
        if server._tls_protocol is not None:
            protocol += "S"
        if session.authenticated:
            protocol += "A"
        rcpt = envelope.rcpt_tos[0] if len(envelope.rcpt_tos) == 1 else None
        # Everything the client chose is escaped once more: a control character that got
        # past the checks above must still not end this header and start another.
        helo = _header_safe(session.host_name or "unknown")
        received = (
            f"Received: from {helo} ([{_header_safe(_source(session.peer))}])\r\n"
            f"\tby {_header_safe(self.options.hostname)} (portkit) with {protocol} id {queue_id}"
            + (f"\r\n\tfor <{_header_safe(rcpt)}>" if rcpt else "")
            + f"; {email.utils.format_datetime(datetime.datetime.now(datetime.UTC))}\r\n"
        )
        return_path = _header_safe(envelope.mail_from or "")
        return f"Return-Path: <{return_path}>\r\n{received}".encode("utf-8", "surrogateescape")


class _Authenticator:
    """aiosmtpd authenticator that only takes the credentials down.

    aiosmtpd calls authenticators synchronously, but checking a scrypt hash takes tens of
    milliseconds: :class:`_SMTP` verifies the credentials kept here in a worker thread,
    with the per-source guard, once aiosmtpd's own AUTH parsing is done.
    """

    def __init__(self) -> None:
        self.pending: tuple[str, str] | None = None

    def __call__(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        self.pending = (
            auth_data.login.decode("utf-8", "replace"),
            auth_data.password.decode("utf-8", "replace"),
        )
        return _DEFERRED


_DEFERRED = AuthResult(success=False, handled=False)


class _SMTP(SMTP):
    """aiosmtpd's SMTP with a line limit, a connection limit and AUTH checked off the loop."""

    def __init__(self, app: SmtpApp, *args: Any, line_length_limit: int, **kwargs: Any) -> None:
        self.line_length_limit = line_length_limit
        self._app = app
        self._refused = False
        super().__init__(*args, **kwargs)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        refusal = self._app.opened(self, _peer(transport.get_extra_info("peername")))
        self._refused = refusal is not None
        if refusal is not None and isinstance(transport, asyncio.WriteTransport):
            # RFC 5321 3.8: a server that cannot serve now may greet with 421 and close.
            transport.write(refusal.encode("ascii") + b"\r\n")
            transport.close()
            return
        super().connection_made(transport)

    # Byte counters for `serve --status`: everything read, every reply written (the bytes
    # inside TLS after STARTTLS).
    def data_received(self, data: bytes) -> None:
        self._app.counters.bytes_in += len(data)
        super().data_received(data)

    async def push(self, status: AnyStr) -> None:
        encoded = (
            status.encode("utf-8" if self.enable_SMTPUTF8 else "ascii")
            if isinstance(status, str)
            else status
        )
        self._app.counters.bytes_out += len(encoded) + 2  # aiosmtpd adds CRLF
        await super().push(status)

    async def smtp_DATA(self, arg: str) -> None:
        # aiosmtpd holds the whole message in memory until it is stored: cap how many are
        # in transfer at once. RFC 5321 4.3.2 lets DATA be answered 452 instead of 354.
        # Counted per source like connections (an IPv4 address, an IPv6 /64).
        assert self.session is not None
        transfer = self._app.transfers.admit(_source(self.session.peer))
        if transfer is None:
            await self.push(R_TOO_MANY_TRANSFERS)
            return
        try:
            await super().smtp_DATA(arg)
        finally:
            transfer.release()

    @syntax("HELO hostname")
    async def smtp_HELO(self, hostname: str) -> None:
        if hostname and _has_controls(hostname):
            await self.push(R_BAD_HELO % "HELO")
            return
        await super().smtp_HELO(hostname)

    @syntax("EHLO hostname")
    async def smtp_EHLO(self, hostname: str) -> None:
        if hostname and _has_controls(hostname):
            await self.push(R_BAD_HELO % "EHLO")
            return
        await super().smtp_EHLO(hostname)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._refused:
            super().connection_lost(exc)
        self._app.closed(self)

    async def auth_PLAIN(self, server: Any, args: list[str]) -> AuthResult:
        return await self._verify(await super().auth_PLAIN(server, args))

    async def auth_LOGIN(self, server: Any, args: list[str]) -> AuthResult:
        return await self._verify(await super().auth_LOGIN(server, args))

    async def _verify(self, result: AuthResult) -> AuthResult:
        """Check the credentials aiosmtpd parsed (scrypt in a thread); guard per source."""
        authenticator = self._authenticator
        if result is not _DEFERRED or not isinstance(authenticator, _Authenticator):
            return result
        assert authenticator.pending is not None
        (user, password), authenticator.pending = authenticator.pending, None
        assert self.session is not None
        source = _source(self.session.peer)
        app = self._app
        # Reserved before the slow check: parallel connections cannot get more guesses
        # checked than the lockout allows (see LoginGuard).
        attempt = app.guard.attempt(source, user)
        ok = False
        if attempt is None:
            delay = app.guard.refused(source)
        else:
            try:
                ok = await asyncio.to_thread(app.accounts.check, user, password)
            finally:
                delay = app.guard.finish(attempt, ok=ok)
        if ok:
            return AuthResult(success=True, auth_data=user)
        app.ctx.logger.info("%s: failed smtp login for %s", source, shown(user))
        if delay:
            await asyncio.sleep(delay)  # slows a guesser; the lockout stops it
        return AuthResult(success=False, handled=False)


class SmtpApp(Application):
    """SMTP intake on 25, submission on 587, implicit TLS on 465."""

    def __init__(self, options: SmtpOptions, ctx: AppContext) -> None:
        super().__init__(ctx)
        self.options = options
        self.store = MaildirStore(options.maildir)
        self.accounts = accounts_of(options)
        self.guard = guard_of(options)
        self.handler = SmtpHandler(self.store, self.accounts, options, ctx)
        self.tls: ssl.SSLContext | None = None
        if options.tls != "none":
            self.tls = server_context(options.cert, options.key)
        self._servers: list[asyncio.Server] = []
        self._open: dict[_SMTP, Slot] = {}  # session -> its connection slot
        self.admission = Admission(options.max_connections, options.max_connections_per_address)
        # Messages in transfer are counted the same way: in total and per source.
        self.transfers = Admission(options.max_transfers, options.max_transfers_per_address)
        self._all_closed = asyncio.Event()
        self._all_closed.set()

    def opened(self, session: _SMTP, peer: tuple[str, int]) -> str | None:
        """Count a new connection; the refusal to send if it is over a limit, else None."""
        admission = self.admission
        slot = admit(admission, peer, self.ctx, stopping=False)
        if slot is None:
            self.counters.rejected += 1
            return R_TOO_BUSY if admission.open >= admission.limit else R_TOO_BUSY_ADDRESS
        self._open[session] = slot
        self._all_closed.clear()
        self.counters.opened()
        return None

    def closed(self, session: _SMTP) -> None:
        """A connection ended."""
        slot = self._open.pop(session, None)
        if slot is not None:
            slot.release()
            self.counters.closed()
        if not self._open:
            self._all_closed.set()

    def _protocol(self) -> SMTP:
        opts = self.options
        starttls = self.tls if opts.tls == "starttls" else None
        return _SMTP(
            self,
            self.handler,
            line_length_limit=opts.max_line_length,
            data_size_limit=opts.max_message_size,
            enable_SMTPUTF8=True,
            hostname=opts.hostname,
            ident="portkit ESMTP",
            tls_context=starttls,
            require_starttls=bool(starttls) and opts.submission,
            auth_required=opts.submission,
            auth_require_tls=not opts.plaintext_login or opts.submission,
            authenticator=_Authenticator(),
            timeout=opts.idle_timeout,
        )

    async def start(self, listeners: Sequence[Listener]) -> None:
        self.store.root.mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()
        implicit = self.tls if self.options.tls == "implicit" else None
        for listener in listeners:
            server = await loop.create_server(self._protocol, sock=listener.sock, ssl=implicit)
            self._servers.append(server)

    async def stop(self, grace: float) -> None:
        for server in self._servers:
            server.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(grace, 0.0)):
                await self._all_closed.wait()
        for session in list(self._open):
            transport = session.transport
            if isinstance(transport, asyncio.Transport):
                transport.abort()
        for server in self._servers:
            with contextlib.suppress(asyncio.TimeoutError):
                async with asyncio.timeout(2.0):
                    await server.wait_closed()
        self._servers.clear()
        self.handler.executor.shutdown(wait=False)  # idle by now: every session has ended
