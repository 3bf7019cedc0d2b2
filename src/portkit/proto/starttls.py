"""The client's side of an in-band upgrade to TLS ("STARTTLS"), without I/O.

A plain connection is opened, a few lines are exchanged, and once the server agrees the
caller starts the TLS handshake on the same connection. Each protocol's dialogue:

- smtp, RFC 3207 section 4: the 220 greeting, ``EHLO`` (RFC 5321 section 4.1.1.1) whose
  250 reply must list ``STARTTLS``, then ``STARTTLS`` and its 220 reply;
- imap, RFC 9051 section 6.2.1 (RFC 3501 section 6.2.1): the ``* OK`` greeting, then a
  tagged ``STARTTLS`` and its tagged ``OK``;
- pop3, RFC 2595 section 4: the ``+OK`` greeting, then ``STLS`` and its ``+OK``;
- ftp, RFC 4217 section 4: the 220 greeting, then ``AUTH TLS`` and its 234 reply.

Multi-line replies (SMTP, RFC 5321 section 4.2.1; FTP, RFC 959 section 4.2) end at the
line whose code is followed by a space. Bytes the server sends after its go-ahead and
before the handshake are refused: a client that read them as if they came over TLS
would accept text injected in plain (RFC 3207 section 6; the "STARTTLS command
injection" class of bugs), so the caller must see none.

Use::

    dialogue = StartTlsClient("smtp")
    write(dialogue.data_to_send())
    while not dialogue.receive(read()):   # False: need more bytes
        write(dialogue.data_to_send())
    # now: TLS handshake on the same connection
"""

from __future__ import annotations

import enum
import re

from portkit._errors import RemoteProtocolError, UsageError

__all__ = ["MAX_LINE", "STARTTLS_PROTOCOLS", "StartTlsClient"]

STARTTLS_PROTOCOLS = ("smtp", "imap", "pop3", "ftp")
MAX_LINE = 8192  # bytes in one reply line: far above any real greeting or EHLO line
MAX_LINES = 200  # lines in the whole dialogue before it is called a flood
_IMAP_TAG = b"pk1"
_CODE_LINE = re.compile(rb"([0-9]{3})([ -]?)(.*)")


class _State(enum.Enum):
    GREETING = "greeting"
    EHLO = "EHLO reply"
    UPGRADE = "reply to the upgrade command"
    READY = "ready for the handshake"


class StartTlsClient:
    """One protocol's STARTTLS dialogue, fed with what the server sends."""

    def __init__(self, protocol: str, *, client_name: str = "localhost") -> None:
        """Args:
        protocol: one of :data:`STARTTLS_PROTOCOLS`.
        client_name: the name given in SMTP's ``EHLO``.

        Raises:
            UsageError: an unknown protocol.
        """
        if protocol not in STARTTLS_PROTOCOLS:
            raise UsageError(
                f"starttls protocol must be one of {', '.join(STARTTLS_PROTOCOLS)}, "
                f"not {protocol!r}"
            )
        self.protocol = protocol
        self._client_name = client_name
        self._state = _State.GREETING
        self._buffer = b""
        self._reply: list[bytes] = []  # lines of the multi-line reply being read
        self._lines = 0
        self._out = b""
        #: the server's lines, decoded for display, in order
        self.transcript: list[str] = []

    @property
    def ready(self) -> bool:
        """The server agreed: start the TLS handshake now."""
        return self._state is _State.READY

    def data_to_send(self) -> bytes:
        """The bytes to write to the server now (empty when waiting for it)."""
        out, self._out = self._out, b""
        return out

    def receive(self, data: bytes) -> bool:
        """Feed what the server sent; return True once the handshake may start.

        Raises:
            RemoteProtocolError: the server refused, does not offer TLS, sent something
                that is not this protocol, or sent bytes after its go-ahead.
        """
        if self._state is _State.READY:
            if data:
                raise self._error("sent data after agreeing to start TLS")
            return True
        if not data:
            raise self._error(f"closed the connection before its {self._state.value}")
        self._buffer += data
        while not self.ready:
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > MAX_LINE:
                    raise self._error(f"sent a line longer than {MAX_LINE} bytes")
                return False
            line, self._buffer = self._buffer[:end].rstrip(b"\r"), self._buffer[end + 1 :]
            self._lines += 1
            if self._lines > MAX_LINES:
                raise self._error(f"sent more than {MAX_LINES} lines without agreeing")
            self.transcript.append(line.decode("utf-8", "replace"))
            self._line(line)
        if self._buffer:
            raise self._error("sent data after agreeing to start TLS")
        return True

    # -- per protocol ---------------------------------------------------------------

    def _line(self, line: bytes) -> None:
        if self.protocol in ("smtp", "ftp"):
            self._coded_line(line)
        elif self.protocol == "pop3":
            self._pop3_line(line)
        else:
            self._imap_line(line)

    def _coded_line(self, line: bytes) -> None:
        """SMTP and FTP: three-digit replies, ``250-`` continues and ``250 `` ends."""
        match = _CODE_LINE.fullmatch(line)
        if match is None:
            if self.protocol == "ftp" and self._reply:
                return  # RFC 959 4.2: inner lines of a multi-line reply may be free text
            raise self._error(f"sent {_show(line)}, not a {self.protocol} reply")
        self._reply.append(line)
        if match[2] == b"-":
            return  # more lines of this reply follow
        code, lines = match[1], self._reply
        self._reply = []
        if self._state is _State.GREETING:
            self._expect(code, b"220", "greeting")
            if self.protocol == "smtp":
                self._send(b"EHLO " + self._client_name.encode("ascii") + b"\r\n")
                self._state = _State.EHLO
            else:
                self._send(b"AUTH TLS\r\n")
                self._state = _State.UPGRADE
        elif self._state is _State.EHLO:
            self._expect(code, b"250", "EHLO")
            keywords = [ln[4:].split(b" ", 1)[0].upper() for ln in lines[1:]]
            if b"STARTTLS" not in keywords:
                raise self._error("does not offer STARTTLS in its EHLO reply")
            self._send(b"STARTTLS\r\n")
            self._state = _State.UPGRADE
        else:
            self._expect(code, b"220" if self.protocol == "smtp" else b"234", "upgrade")
            self._state = _State.READY

    def _pop3_line(self, line: bytes) -> None:
        ok = line == b"+OK" or line.startswith(b"+OK ")
        if not ok:
            what = "greeting" if self._state is _State.GREETING else "STLS"
            raise self._error(f"answered the {what} with {_show(line)}")
        if self._state is _State.GREETING:
            self._send(b"STLS\r\n")
            self._state = _State.UPGRADE
        else:
            self._state = _State.READY

    def _imap_line(self, line: bytes) -> None:
        if self._state is _State.GREETING:
            if not line.upper().startswith(b"* OK"):
                raise self._error(f"greeted with {_show(line)}, not '* OK'")
            self._send(_IMAP_TAG + b" STARTTLS\r\n")
            self._state = _State.UPGRADE
            return
        tag, _, rest = line.partition(b" ")
        if tag == b"*":
            return  # an untagged response (a capability update) before the tagged one
        if tag != _IMAP_TAG:
            raise self._error(f"sent {_show(line)}, not a reply to STARTTLS")
        if not rest.upper().startswith(b"OK"):
            raise self._error(f"refused STARTTLS: {_show(line)}")
        self._state = _State.READY

    # -- helpers --------------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        self._out += data

    def _expect(self, code: bytes, wanted: bytes, what: str) -> None:
        if code != wanted:
            last = self.transcript[-1] if self.transcript else ""
            raise self._error(f"answered the {what} with {last!r}, not {wanted.decode()}")

    def _error(self, what: str) -> RemoteProtocolError:
        return RemoteProtocolError(f"{self.protocol} starttls: the server {what}")


def _show(line: bytes) -> str:
    return repr(line[:80].decode("utf-8", "replace"))
