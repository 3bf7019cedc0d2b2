"""What the POP3 and IMAP server sessions share: events, line framing, the receive loop.

Both protocols read CRLF-terminated command lines (RFC 1939 section 3, RFC 3501 section
2.2) and answer with the same kinds of events for the I/O layer. :class:`LineSession` is
their common receive loop; the I/O contract it gives both, in the manner of h11:

- ``receive(data)`` feeds bytes from the client and returns the events they cause;
  ``receive(b"")`` means the client will send nothing more (end of input): commands
  already complete are still answered, then :class:`Close` ends the session.
- While ``pending()`` is true a long answer is not finished: send what came out, then call
  ``resume()`` for the next part. No input is read meanwhile, so memory stays bounded.
- After :class:`StartTls`, bytes that were pipelined in the clear are dropped (RFC 2595
  section 3.1, RFC 3501 section 6.2.1; CVE-2011-0411), and ``tls_started()`` is called
  once the handshake is done.

No sockets, no asyncio.
"""

from __future__ import annotations

import base64
import binascii
import enum
from dataclasses import dataclass
from typing import Generic, TypedDict, TypeVar

from portkit._errors import LocalProtocolError

__all__ = [
    "LINE_TOO_LONG",
    "MAX_BAD_COMMANDS",
    "Close",
    "Event",
    "LineBuffer",
    "LineOptions",
    "LineSession",
    "LoginFailed",
    "LoginSucceeded",
    "Overflow",
    "Send",
    "StartTls",
    "Transition",
    "decode_sasl_plain",
]


#: Default number of invalid commands (unknown, not allowed yet, malformed) a client may
#: send before it logs in; with the next one the session ends, as dovecot's login process
#: does. A real client sends none: many mean a scanner or a confused peer holding a slot.
MAX_BAD_COMMANDS = 10


@dataclass(frozen=True, slots=True, kw_only=True)
class Send:
    """Write these bytes to the client."""

    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class StartTls:
    """Upgrade the connection to TLS now (the positive reply was sent before this event)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LoginFailed:
    """A login attempt failed; the I/O layer may delay the reply that follows."""

    user: str


@dataclass(frozen=True, slots=True, kw_only=True)
class LoginSucceeded:
    """A user logged in."""

    user: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Close:
    """Close the connection after the bytes already sent."""


Event = Send | StartTls | LoginFailed | LoginSucceeded | Close


class Overflow(enum.Enum):
    """What :meth:`LineBuffer.next_line` returns for a line longer than its cap."""

    LINE_TOO_LONG = "line too long"


LINE_TOO_LONG = Overflow.LINE_TOO_LONG


class LineBuffer:
    """Bytes from the client, cut into lines ending in LF (a CR before it is removed).

    At most ``max_line`` octets of an unfinished line are kept: a longer one is dropped up
    to its end and reported once as :data:`LINE_TOO_LONG`, so a peer that never sends a
    line feed cannot grow the buffer without bound.
    """

    def __init__(self, max_line: int) -> None:
        self.max_line = max_line
        self._buffer = bytearray()
        self._discarding = False  # dropping the rest of an over-long line

    def feed(self, data: bytes) -> None:
        """Append bytes from the client."""
        self._buffer += data

    def __len__(self) -> int:
        return len(self._buffer)

    def clear(self) -> None:
        """Forget everything buffered (e.g. bytes pipelined in the clear before TLS)."""
        self._buffer.clear()

    def take(self, size: int) -> bytes:
        """Remove and return up to ``size`` octets as they came (literal data, no framing)."""
        chunk = bytes(self._buffer[:size])
        del self._buffer[:size]
        return chunk

    def next_line(self) -> bytes | Overflow | None:
        """The next complete line without its line ending, :data:`LINE_TOO_LONG`, or ``None``.

        ``None`` means more data is needed. An over-long line is reported once, when it is
        first seen to be too long; its remainder is skipped silently.
        """
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                # max_line octets and the CR of their CRLF may wait for the LF: judged
                # with less, a line would be too long or not depending on how it arrived.
                if len(self._buffer) > self.max_line + 1:
                    self._buffer.clear()
                    if not self._discarding:
                        self._discarding = True
                        return LINE_TOO_LONG
                return None
            line = bytes(self._buffer[:end]).removesuffix(b"\r")
            del self._buffer[: end + 1]
            if self._discarding:
                self._discarding = False
                continue
            if len(line) > self.max_line:
                return LINE_TOO_LONG
            return line


def decode_sasl_plain(response: bytes) -> tuple[str, str, str] | None:
    """Decode a base64 SASL PLAIN response into (authzid, authcid, password), or ``None``.

    RFC 4616 section 2: ``[authzid] NUL authcid NUL passwd`` in UTF-8. ``None`` means the
    response was malformed (not base64, not UTF-8, or not three fields).
    """
    try:
        authzid, authcid, passwd = (
            base64.b64decode(response, validate=True).decode("utf-8").split("\0")
        )
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return authzid, authcid, passwd


State = TypeVar("State", bound=enum.Enum)
Handler = TypeVar("Handler")


@dataclass(frozen=True, slots=True)
class Transition(Generic[Handler, State]):
    """One row of a session's table: what a command does, and where it may lead.

    ``to`` lists every state the command can leave the session in, the current one
    included when the command can fail and stay; the handler returns which one it is.
    """

    handler: Handler
    to: frozenset[State]

    def lands(self, protocol: str, command: str, state: State, target: State | None) -> State:
        """The state after the handler returned ``target`` (``None``: stay in ``state``).

        A target the row does not list is a bug in the session, not the peer's doing.
        """
        landed = state if target is None else target
        if landed not in self.to:
            raise LocalProtocolError(
                f"{protocol} command {command!r} in state {state.value!r} cannot lead to"
                f" {landed.value!r}"
            )
        return landed


class LineOptions(TypedDict, total=False):
    """The options every line session takes (see :class:`LineSession`), by keyword."""

    tls_available: bool
    tls_active: bool
    plaintext_login: bool
    max_bad_commands: int


class LineSession:
    """The receive loop of a line-based server session (see the module docstring).

    Subclasses read their input in :meth:`_read` (by default one line at a time, passed to
    :meth:`_line`) and say when they are :attr:`closed`. What they share besides: the
    logged-in :attr:`user`, the STARTTLS guard, and the count of invalid commands before
    login (:meth:`_too_many_bad`).

    Args:
        max_line: the longest command line kept; longer ones go to :meth:`_line_too_long`.
        tls_available: a certificate is configured, so STARTTLS/STLS can be offered.
        tls_active: the connection is already TLS (implicit TLS, or after STARTTLS).
        plaintext_login: allow passwords without TLS (RFC 2595 section 2.3 lets a server
            refuse them; a development server on loopback may allow them).
        max_bad_commands: invalid commands (unknown, not allowed yet, malformed) allowed
            before login; with the next one the session ends.
    """

    def __init__(
        self,
        *,
        max_line: int,
        tls_available: bool = False,
        tls_active: bool = False,
        plaintext_login: bool = True,
        max_bad_commands: int = MAX_BAD_COMMANDS,
    ) -> None:
        self.tls_available = tls_available
        self.tls_active = tls_active
        self.plaintext_login = plaintext_login
        self.max_bad_commands = max_bad_commands
        self.user: str | None = None  # who logged in (or, in POP3, who USER named)
        self._bad_commands = 0  # invalid commands so far, counted before login
        self._lines = LineBuffer(max_line)
        self._out: list[Event] = []
        self._input_ended = False

    # -- the I/O surface -------------------------------------------------------------------

    def greeting(self) -> list[Event]:
        """What the server says first, before the client sends anything."""
        raise NotImplementedError

    def receive(self, data: bytes) -> list[Event]:
        """Feed bytes from the client (``b""``: end of input); return the events caused."""
        if self._input_ended:
            raise LocalProtocolError(f"{len(data)} octets received after the end of input")
        if data:
            self._lines.feed(data)
        else:
            self._input_ended = True
        return self.resume()

    def resume(self) -> list[Event]:
        """Continue an answer in progress (while :meth:`pending`), then read on."""
        self._work()
        while not self.pending() and not self.closed and self._read():
            if self._out and isinstance(self._out[-1], StartTls):
                # Nothing pipelined in the clear after STARTTLS may be taken as if it came
                # over TLS (RFC 2595 section 3.1, RFC 3501 section 6.2.1, CVE-2011-0411).
                self._lines.clear()
                break
        if self._input_ended and not self.pending() and not self.closed:
            self.connection_lost()
            self._out.append(Close())
        out, self._out = self._out, []
        return out

    def pending(self) -> bool:
        """Whether an answer is unfinished: call :meth:`resume` after sending its part."""
        return False

    def quick(self, data: bytes | None) -> bool:
        """Whether :meth:`receive` of ``data`` (``None``: :meth:`resume`) does only quick
        work: no password check, no fsync, no scan of a whole mailbox.

        The I/O layer runs quick input inline and the rest in a worker thread; handing every
        command to a thread costs more than reading one message file from the page cache.
        The default is the safe answer.
        """
        return False

    def _complete_lines(self, data: bytes) -> list[bytes] | None:
        """The command lines ``data`` completes, or ``None`` when earlier input is waiting
        in the buffer (then the lines cannot be judged from ``data`` alone)."""
        if len(self._lines):
            return None
        return data.split(b"\n")[:-1]  # after the last newline: a line still incomplete

    def tls_started(self) -> None:
        """The I/O layer finished the TLS handshake after :class:`StartTls`."""
        self.tls_active = True

    def buffered(self) -> int:
        """Octets of input held for commands not yet complete (bounded by the caps)."""
        return len(self._lines)

    def connection_lost(self) -> None:
        """The client went away: release what the session holds."""
        raise NotImplementedError

    @property
    def closed(self) -> bool:
        """The conversation is over: no more input is read."""
        raise NotImplementedError

    # -- for subclasses ----------------------------------------------------------------------

    def _login_allowed(self) -> bool:
        return self.plaintext_login or self.tls_active

    def _too_many_bad(self) -> bool:
        """Count one more invalid command before login; whether that is one too many
        (then the subclass says goodbye and ends the session, as dovecot's login does)."""
        self._bad_commands += 1
        return self._bad_commands > self.max_bad_commands

    def _start_tls(self, *, active: bytes, unavailable: bytes, go: bytes) -> None:
        """Answer STARTTLS/STLS (RFC 2595 section 4, RFC 3501 section 6.2.1) with one of
        the three lines given; after ``go`` the I/O layer upgrades the connection."""
        if self.tls_active:
            self._send_line(active)
        elif not self.tls_available:
            self._send_line(unavailable)
        else:
            self._send_line(go)
            self._out.append(StartTls())

    def _send_line(self, line: bytes) -> None:
        self._out.append(Send(data=line + b"\r\n"))

    def _work(self) -> None:
        """Advance an answer in progress; nothing to do unless :meth:`pending` can be true."""

    def _read(self) -> bool:
        """Consume some input and act on it; ``False`` when more data is needed."""
        line = self._lines.next_line()
        if line is None:
            return False
        if line is LINE_TOO_LONG:
            self._line_too_long()
        else:
            self._line(line)
        return True

    def _line(self, line: bytes) -> None:
        raise NotImplementedError

    def _line_too_long(self) -> None:
        raise NotImplementedError
