"""The pop3 and imap kinds: thin asyncio adapters around the sans-io sessions in proto/.

Each connection gets a session object (:class:`~portkit.proto.sessions.pop3.Pop3Session` or
:class:`~portkit.proto.sessions.imap.ImapSession`); this module only moves bytes between the socket
and the session and acts on its events: write, start TLS, delay a failed login, close.

Connections are admitted by :class:`~portkit.host._limits.Admission` (``max-connections``,
``max-connections-per-address``). A client that asks for a big message and then reads
nothing is dropped by the send timeout of :class:`~portkit.host._limits.SendClock`: what it
acknowledges must grow within every ``send-timeout`` seconds, so it holds neither its slot
nor the unsent answer for the whole ``idle-timeout``.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence
from typing import Any

import portkit.proto.sessions.imap as imap
import portkit.proto.sessions.pop3 as pop3
from portkit._errors import PortkitError
from portkit.host._app import AppContext, StreamApplication
from portkit.host._limits import Admission, SendClock
from portkit.host._tls import server_context
from portkit.host.apps._sockets import bytes_acked, reset
from portkit.host.apps.mail._auth import LoginGuard, shown
from portkit.host.apps.mail._backend import MailBackend
from portkit.host.apps.mail._options import (
    ImapOptions,
    Pop3Options,
    RetrievalOptions,
    accounts_of,
    guard_of,
)
from portkit.host.apps.mail._store import MaildirStore
from portkit.proto.sessions._line import (
    Close,
    Event,
    LineSession,
    LoginFailed,
    LoginSucceeded,
    Send,
    StartTls,
)

__all__ = ["ImapApp", "Pop3App"]

CHUNK = 64 * 1024
#: Bytes written before waiting for the peer to read (bounded memory per connection).
DRAIN_EVERY = 256 * 1024
#: How long a TLS handshake may take before the connection is dropped.
TLS_HANDSHAKE_TIMEOUT = 30.0


class _MailApp(StreamApplication[RetrievalOptions]):
    """What the pop3 and imap applications share: store, accounts, guard, TLS, the loop."""

    def __init__(self, options: RetrievalOptions, ctx: AppContext) -> None:
        super().__init__(options, ctx)
        self.store = MaildirStore(options.maildir)
        self.accounts = accounts_of(options)
        self.guard: LoginGuard = guard_of(options)
        # Counted as each connection arrives, before its task runs (StreamApplication).
        self.admission = Admission(options.max_connections, options.max_connections_per_address)
        self.tls: ssl.SSLContext | None = None
        if options.tls != "none":
            self.tls = server_context(options.cert, options.key)

    def backend(self, peer: str) -> MailBackend:
        source = peer.rpartition(":")[0].strip("[]")
        return MailBackend(self.store, self.accounts, self.guard, source)

    def new_session(self, backend: MailBackend) -> LineSession:
        raise NotImplementedError

    async def poll(self, session: LineSession) -> list[Event]:
        """Events to push while the client is quiet (IMAP IDLE); none by default."""
        return []

    def poll_interval(self, session: LineSession) -> float | None:
        return None

    async def handle(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str
    ) -> None:
        implicit = self.options.tls == "implicit"
        if implicit and not await self._start_tls(writer, peer):
            return
        # Keep up to a whole DRAIN_EVERY part queued while the client reads the previous
        # one, rather than asyncio's 64 KiB: the next part is ready when the socket is.
        writer.transport.set_write_buffer_limits(high=2 * DRAIN_EVERY, low=DRAIN_EVERY // 2)
        backend = self.backend(peer)
        session = self.new_session(backend)
        if implicit:
            session.tls_started()
        user = "-"
        loop = asyncio.get_running_loop()
        clock = _ReadClock()
        last_input = loop.time()
        # A client that has not logged in by then is dropped, however busy it keeps the
        # connection: strangers cannot hold slots for the whole idle timeout.
        login_by = last_input + self.options.login_timeout
        try:
            if await self._act(session, session.greeting(), writer, backend) is False:
                return
            while True:
                interval = self.poll_interval(session)
                wait = interval or self.options.idle_timeout
                if user == "-":
                    wait = min(wait, login_by - loop.time())
                try:
                    if wait <= 0:
                        raise TimeoutError
                    data = await clock.read(reader, wait)
                except TimeoutError:
                    if user == "-" and loop.time() >= login_by:
                        self.ctx.access(peer, "- no login within the login timeout")
                        return
                    if interval is None or loop.time() - last_input > self.options.idle_timeout:
                        # RFC 1939 section 3 / RFC 2177: an inactive client may be logged out.
                        self.ctx.access(peer, f"{user} idle timeout")
                        return
                    if await self._act(session, await self.poll(session), writer, backend) is False:
                        return
                    continue
                last_input = loop.time()
                self.counters.bytes_in += len(data)
                # Logins verify scrypt hashes (tens of ms) and some commands fsync or scan a
                # mailbox: those run in a worker thread, so one client never stalls the
                # others. RETR and FETCH read a message file, quicker than the hop to a
                # thread and back: inline. b"" is the end of input: what was asked is still
                # answered, then Close.
                if session.quick(data):
                    events = session.receive(data)
                else:
                    events = await asyncio.to_thread(session.receive, data)
                for event in events:
                    if isinstance(event, LoginSucceeded):
                        user = event.user
                if await self._act(session, events, writer, backend) is False:
                    return
                while session.pending():  # a long answer, batch by batch (bounded memory)
                    if session.quick(None):
                        events = session.resume()
                    else:
                        events = await asyncio.to_thread(session.resume)
                    if await self._act(session, events, writer, backend) is False:
                        return
        finally:
            await clock.close()
            session.connection_lost()
            self.ctx.access(peer, f"{user} {self.ctx.kind} session ended")

    async def _start_tls(self, writer: asyncio.StreamWriter, peer: str) -> bool:
        """Handshake as the server; a client that fails it is logged and dropped."""
        assert self.tls is not None
        try:
            await writer.start_tls(self.tls, ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT)
        except (ssl.SSLError, ConnectionError, TimeoutError) as exc:
            self.ctx.logger.info("%s: tls handshake failed: %s", peer, exc)
            self.ctx.access(peer, "tls handshake failed")
            return False
        return True

    async def _act(
        self,
        session: LineSession,
        events: Sequence[Event],
        writer: asyncio.StreamWriter,
        backend: MailBackend,
    ) -> bool:
        """Carry out the session's events; False when the connection should end."""
        chunks: list[bytes | memoryview] = []
        pending = 0

        async def flush() -> None:
            nonlocal pending
            if chunks:
                # One write per burst: many small writes would each be a TCP segment.
                writer.write(b"".join(chunks))
                chunks.clear()
                pending = 0
                if not await self._drain(writer):
                    raise _NotTaken

        try:
            for event in events:
                if isinstance(event, Send):
                    # Consecutive replies go out together (a FETCH of many messages is
                    # hundreds of events); flow control is checked every DRAIN_EVERY bytes.
                    # A big reply (RETR) goes out in parts: over TLS, one big write passes
                    # whole to the socket's buffer and the drain would not wait for it.
                    self.counters.bytes_out += len(event.data)
                    data = memoryview(event.data)
                    while data:
                        part, data = data[: DRAIN_EVERY - pending], data[DRAIN_EVERY - pending :]
                        chunks.append(part)
                        pending += len(part)
                        if pending >= DRAIN_EVERY:
                            await flush()
                    continue
                await flush()
                if isinstance(event, LoginFailed):
                    delay, backend.delay = backend.delay, 0.0
                    self.ctx.logger.info(
                        "%s: failed login for %s", backend.source, shown(event.user)
                    )
                    if delay:
                        await asyncio.sleep(delay)  # slows a guesser; the lockout stops it
                elif isinstance(event, StartTls):
                    if not await self._start_tls(writer, backend.source):
                        return False
                    session.tls_started()
                elif isinstance(event, Close):
                    return False
            await flush()
        except _NotTaken:
            seconds = self.options.send_timeout
            self.ctx.logger.info(
                "%s: answer not taken in %gs (send timeout)", backend.source, seconds
            )
            self.ctx.access(backend.source, "- answer not taken (send timeout)")
            # A reset: what the client did not take is dropped, not offered to it for minutes.
            transport = writer.transport
            if isinstance(transport, asyncio.Transport):
                reset(transport)
            else:
                transport.abort()
            return False
        return True

    async def _drain(self, writer: asyncio.StreamWriter) -> bool:
        """Wait until the client has taken what was written; False on a send timeout.

        As for web's responses (:class:`SendClock`), what the client acknowledges must grow
        by ``min-send-rate`` x ``send-timeout`` bytes (at least one) within every
        ``send-timeout`` seconds; it is sampled every second at most.
        """
        transport = writer.transport
        if not transport.get_write_buffer_size() and not transport.is_closing():
            # The kernel took it all at once (the common case for a short answer): there
            # is nothing to wait for, and no clock or TCP_INFO query to set up per command.
            return True
        sock = transport.get_extra_info("socket")
        loop = asyncio.get_running_loop()
        clock = SendClock(
            self.options.send_timeout,
            self.options.min_send_rate,
            loop.time(),
            _taken(sock, transport),
        )
        step = min(1.0, self.options.send_timeout / 2)
        while True:
            try:
                async with asyncio.timeout(step):
                    await writer.drain()
                return True
            except TimeoutError:
                if clock.expired(loop.time(), _taken(sock, transport)):
                    return False


class _ReadClock:
    """The time limit of each read from one connection, in one :func:`asyncio.timeout`
    that is moved from read to read.

    A new ``asyncio.timeout`` per read costs about three times as much as moving one
    (here 9 µs against 3), and a POP3 client reading a mailbox sends a command per
    message. Between reads the clock is stopped: a long answer is bounded by the send
    clock, not by the idle timeout.
    """

    def __init__(self) -> None:
        self._timeout: asyncio.Timeout | None = None

    async def read(self, reader: asyncio.StreamReader, seconds: float) -> bytes:
        """Up to :data:`CHUNK` octets; raise :class:`TimeoutError` after ``seconds``."""
        if self._timeout is None:
            self._timeout = asyncio.timeout(None)
            await self._timeout.__aenter__()
        timeout = self._timeout
        timeout.reschedule(asyncio.get_running_loop().time() + seconds)
        try:
            data = await reader.read(CHUNK)
        except BaseException as exc:
            # The timeout ends here: it turns its own cancellation into TimeoutError,
            # and lets any other exception through; the next read starts a new one.
            self._timeout = None
            await timeout.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        if timeout.expired():
            # The time ran out just as the data came: the data wins, as it would leaving
            # an ``async with asyncio.timeout()``, and this timeout is done.
            self._timeout = None
            await timeout.__aexit__(None, None, None)
        else:
            timeout.reschedule(None)
        return data

    async def close(self) -> None:
        """Leave the timeout (when the connection ends between reads)."""
        timeout, self._timeout = self._timeout, None
        if timeout is not None:
            await timeout.__aexit__(None, None, None)


class _NotTaken(PortkitError):
    """The client did not take an answer within the send timeout (caught in ``_act``)."""


def _taken(sock: Any, transport: asyncio.WriteTransport) -> int:
    """How much of what was written the client has taken, as a count that only grows.

    The bytes its TCP acknowledged; where TCP_INFO is missing, how far the transport's
    buffer has shrunk (nothing is written while a drain waits, so it only shrinks).
    """
    acked = bytes_acked(sock)
    return -transport.get_write_buffer_size() if acked is None else acked


class Pop3App(_MailApp):
    """POP3 (RFC 1939) on 110, STLS (RFC 2595), implicit TLS on 995."""

    def new_session(self, backend: MailBackend) -> LineSession:
        return pop3.Pop3Session(
            backend,
            tls_available=self.tls is not None and self.options.tls == "starttls",
            plaintext_login=self.options.plaintext_login,
            max_bad_commands=self.options.max_bad_commands,
        )


class ImapApp(_MailApp):
    """IMAP4rev1 (RFC 3501) on 143, STARTTLS, implicit TLS on 993, IDLE (RFC 2177)."""

    options: ImapOptions

    def new_session(self, backend: MailBackend) -> LineSession:
        return imap.ImapSession(
            backend,
            tls_available=self.tls is not None and self.options.tls == "starttls",
            plaintext_login=self.options.plaintext_login,
            max_literal=self.options.max_literal,
            max_command=self.options.max_command,
            max_command_unauthenticated=self.options.max_command_before_login,
            max_bad_commands=self.options.max_bad_commands,
        )

    def poll_interval(self, session: LineSession) -> float | None:
        assert isinstance(session, imap.ImapSession)
        return self.options.idle_poll if session.state is imap.ImapState.IDLE else None

    async def poll(self, session: LineSession) -> list[Event]:
        assert isinstance(session, imap.ImapSession)
        return list(await asyncio.to_thread(session.poll))


def pop3_app(options: Pop3Options, ctx: AppContext) -> Pop3App:
    """Build a pop3 application."""
    return Pop3App(options, ctx)


def imap_app(options: ImapOptions, ctx: AppContext) -> ImapApp:
    """Build an imap application."""
    return ImapApp(options, ctx)
