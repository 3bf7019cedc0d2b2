"""One TCP connection for identification, with TLS run over memory BIOs.

:class:`Channel` is what the identification ladder (``_identify.py``) sends probes on and
reads answers from; running TLS through :class:`ssl.SSLObject` rather than asyncio's own
TLS keeps the raw bytes a server answers a ClientHello with, so a failed handshake can
still be judged. :func:`tls_info` turns a handshake into the results model's
:class:`TlsInfo`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import ssl
import time

from portkit._tls_summary import tls_summary as tls_info
from portkit.endpoint import host_port, network_error
from portkit.scan._model import TlsInfo

__all__ = [
    "EVIDENCE_BYTES",
    "READ_CHUNK",
    "Channel",
    "Closed",
    "is_echo",
    "server_hostname",
    "tls_info",
    "where",
]

EVIDENCE_BYTES = 256
"""How many of the first bytes a server sent are kept as evidence."""
READ_CHUNK = 4096


class Closed(Exception):
    """The connection could not be (re)opened for the next probe."""


def is_echo(payload: bytes | None, data: bytes) -> bool:
    """Whether ``data`` is (the start of) ``payload`` sent back: an echo server's answer."""
    if not payload or len(data) < 4:
        return False
    n = min(len(data), len(payload))
    return data[:n] == payload[:n]


class Channel:
    """One TCP connection, optionally with TLS run through :class:`ssl.SSLObject`.

    Running TLS over memory BIOs (instead of asyncio's own TLS) keeps the raw bytes a
    server answers a ClientHello with, so a failed handshake can still be judged.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._tls: ssl.SSLObject | None = None
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self.raw = bytearray()  # bounded copy of raw bytes received during the handshake
        self.saw_eof = False  # the peer closed its side
        self.hello = b""  # our ClientHello, to tell an echo from an answer

    @classmethod
    async def open(cls, host: str, port: int, limit: float) -> tuple[Channel, float]:
        """Connect within ``limit`` seconds; return the channel and the connect time."""
        started = time.perf_counter()
        try:
            async with asyncio.timeout(limit):
                reader, writer = await asyncio.open_connection(host, port, limit=READ_CHUNK * 4)
        except OSError as exc:
            raise network_error(exc, host, port, timeout=limit) from None
        return cls(reader, writer), time.perf_counter() - started

    async def send(self, data: bytes) -> None:
        if self._tls is not None:
            self._tls.write(data)
            data = self._outgoing.read()
        try:
            self._writer.write(data)
            await self._writer.drain()
        except OSError as exc:
            raise Closed(str(exc)) from None

    async def recv(self, deadline: float) -> bytes:
        """Return the next bytes (b"" at end of stream); TimeoutError at ``deadline``."""
        if self._tls is None:
            return await self._recv_raw(deadline)
        while True:
            try:
                return self._tls.read(READ_CHUNK)
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError:
                # close_notify, an unclean EOF or a broken record: the stream is over.
                return b""
            await self._flush()
            raw = await self._recv_raw(deadline)
            if not raw:
                self._incoming.write_eof()
            else:
                self._incoming.write(raw)

    async def _recv_raw(self, deadline: float) -> bytes:
        remaining = deadline - asyncio.get_running_loop().time()
        try:
            # Past the deadline, what has already arrived is still taken (a read of
            # buffered bytes does not wait): on a busy event loop the answer and the
            # deadline come due in the same turn, and the answer must win.
            async with asyncio.timeout(max(remaining, 0.0)):
                data = await self._reader.read(READ_CHUNK)
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        except TimeoutError:
            if remaining <= 0:
                raise
            # The deadline cancelled a read whose bytes may have come in that same
            # turn: they wait in the reader's buffer. One look that does not wait.
            late = await self._buffered()
            if late is None:
                raise
            data = late
        self.saw_eof = self.saw_eof or not data
        return data

    async def _buffered(self) -> bytes | None:
        """Bytes the stream already holds (b"" at its end), or None when it holds none."""
        try:
            async with asyncio.timeout(0):
                return await self._reader.read(READ_CHUNK)
        except TimeoutError:
            return None
        except (ConnectionResetError, BrokenPipeError):
            return b""

    async def _flush(self) -> None:
        pending = self._outgoing.read()
        if pending:
            await self._send_raw(pending)

    async def _send_raw(self, data: bytes) -> None:
        try:
            self._writer.write(data)
            await self._writer.drain()
        except OSError as exc:
            raise Closed(str(exc)) from None

    async def start_tls(
        self,
        server_hostname: str | None,
        first_byte: float,
        deadline: float,
        *,
        alpn: tuple[str, ...] = ("http/1.1",),
    ) -> TlsInfo | None:
        """Run a TLS handshake; return what it showed, or ``None`` if it failed.

        A server that has not answered the ClientHello by ``first_byte`` is not going to;
        the whole handshake must end by ``deadline``. On failure ``self.raw`` holds what
        the server answered instead (maybe nothing). ``alpn``: the application protocols
        offered (RFC 7301); HTTP/1.1 by default, the protocol of the probes sent inside.
        """
        tls = _client_context(alpn).wrap_bio(
            self._incoming, self._outgoing, server_side=False, server_hostname=server_hostname
        )
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError:
                return None
            try:
                if not self.hello:
                    self.hello = self._outgoing.read()
                    await self._send_raw(self.hello)
                await self._flush()
                raw = await self._recv_raw(first_byte if not self.raw else deadline)
            except (TimeoutError, Closed):
                return None
            if not raw:
                self._incoming.write_eof()
                continue  # the handshake call reports the failure
            if len(self.raw) < EVIDENCE_BYTES * 4:
                self.raw += raw[: EVIDENCE_BYTES * 4 - len(self.raw)]
            self._incoming.write(raw)
        await self._flush()
        self._tls = tls
        return tls_info(tls)

    async def close(self) -> None:
        self._writer.close()
        # Closing a probe connection the peer may already have reset: there is nothing
        # to report about that, the verdict is made.
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(0.5):
                await self._writer.wait_closed()


def where(host: str, port: int) -> str:
    return host_port(host, port)


@functools.cache
def _client_context(alpn: tuple[str, ...]) -> ssl.SSLContext:
    """A TLS client context for identification: no verification, old versions allowed.

    We want to see every TLS server, including self-signed and outdated ones; nothing
    secret is ever sent over these connections. ``alpn``: the protocols offered.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    with contextlib.suppress(ssl.SSLError):
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    ctx.set_alpn_protocols(list(alpn))
    return ctx


def server_hostname(host: str) -> str | None:
    """The name for SNI: the host when it is a name, nothing for an address."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return host
    return None
