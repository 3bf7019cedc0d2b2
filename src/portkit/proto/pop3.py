"""POP3 server session as a sans-io state machine (RFC 1939, RFC 2449 CAPA, RFC 2595 STLS).

Bytes from the client go in through :meth:`Pop3Session.receive`; what comes out is a list
of events for the I/O layer: :class:`Send` (bytes to write), :class:`StartTls` (upgrade the
transport now, after the ``+OK`` that precedes it), :class:`LoginFailed` (so the host can
delay and count it per source) and :class:`Close`. No sockets, no asyncio.

The session's legal moves are one table, :data:`TRANSITIONS`: (state, command) -> handler.
A command that is not in the table for the current state gets ``-ERR`` naming both, and
:meth:`Pop3Session.transition` raises :class:`~portkit.LocalProtocolError` for the same
pair when driven directly.

The mail itself comes from a :class:`Pop3Backend`, which authenticates and opens the
maildrop (taking the exclusive lock of RFC 1939 section 8).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from typing import Protocol

from portkit._errors import LocalProtocolError, PortkitError
from portkit.proto._session import (
    LINE_TOO_LONG,
    Close,
    Event,
    LineBuffer,
    LoginFailed,
    LoginSucceeded,
    Send,
    StartTls,
    decode_sasl_plain,
)

__all__ = [
    "COMMANDS",
    "MAX_LINE",
    "TRANSITIONS",
    "Close",
    "Event",
    "LoginFailed",
    "LoginSucceeded",
    "Pop3Backend",
    "Pop3Maildrop",
    "Pop3Session",
    "Pop3State",
    "Send",
    "StartTls",
    "byte_stuff",
]

# RFC 2449 section 4: a command line is at most 255 octets including CRLF. SASL responses
# (RFC 5034 section 4) may be longer, so the cap is generous but fixed.
MAX_LINE = 4096


class Pop3State(enum.Enum):
    """The states of RFC 1939 section 3, with the sub-steps of USER/PASS and SASL."""

    AUTHORIZATION = "authorization"
    AUTHORIZATION_USER = "authorization (user given)"  # USER accepted, PASS expected
    AUTHORIZATION_SASL = "authorization (sasl)"  # AUTH PLAIN sent "+ ", response expected
    TRANSACTION = "transaction"
    CLOSED = "closed"  # after QUIT (the UPDATE state ran) or a fatal error


# Named replies (status indicators, RFC 1939 section 3; response codes RFC 2449 section 8,
# RFC 3206 for [AUTH] and [SYS/...]).
OK = b"+OK"
ERR = b"-ERR"
R_GREETING = b"+OK portkit POP3 server ready"
R_BYE = b"+OK bye"
R_BYE_UPDATED = b"+OK bye, changes saved"
R_USER_OK = b"+OK send PASS"
R_LOGGED_IN = b"+OK maildrop locked and ready"
R_AUTH_FAILED = b"-ERR [AUTH] invalid user name or password"
R_IN_USE = b"-ERR [IN-USE] maildrop already locked by another session"
R_CONTINUE = b"+ "
R_SASL_CANCELLED = b"-ERR sasl authentication cancelled"
R_SASL_BAD = b"-ERR malformed sasl response"
R_SASL_MECH = b"-ERR unsupported sasl mechanism"
R_STLS_GO = b"+OK begin tls negotiation"
R_STLS_NA = b"-ERR tls not available"
R_STLS_ACTIVE = b"-ERR tls already active"
R_PLAIN_NEEDS_TLS = b"-ERR [AUTH] plaintext login needs tls first (use STLS)"
R_NO_SUCH_MSG = b"-ERR no such message"
R_DELETED = b"-ERR message already deleted"
R_BAD_ARGS = b"-ERR bad arguments"
R_LINE_TOO_LONG = b"-ERR line too long"
R_UNKNOWN = b"-ERR unknown command"
R_APOP_NA = b"-ERR APOP not supported: passwords are stored hashed, use AUTH PLAIN"
R_SYS_TEMP = b"-ERR [SYS/TEMP] maildrop not available"
R_NOOP = b"+OK"
R_RSET = b"+OK maildrop reset"


class Pop3Maildrop(Protocol):
    """An opened, locked maildrop: a fixed list of messages for the session."""

    def listing(self) -> Sequence[tuple[str, int]]:
        """``(unique id, size in octets)`` per message, message 1 first."""
        ...

    def read(self, index: int) -> bytes:
        """The bytes of message ``index`` (0-based)."""
        ...

    def commit(self, deleted: Sequence[int]) -> None:
        """Remove the messages marked deleted (the UPDATE state, RFC 1939 section 6)."""
        ...

    def release(self) -> None:
        """Drop the lock without changes."""
        ...


class Pop3Backend(Protocol):
    """Accounts and maildrops for a session."""

    def authenticate(self, user: str, password: str) -> bool:
        """Whether the credentials are valid."""
        ...

    def open_maildrop(self, user: str) -> Pop3Maildrop:
        """Lock and open the maildrop; raise :class:`~portkit.PortkitError` if locked."""
        ...


def byte_stuff(message: bytes) -> bytes:
    """Multi-line body per RFC 1939 section 3: CRLF lines, leading dots doubled, ``.`` end."""
    if b"\r\n" not in message or message.count(b"\n") != message.count(b"\r\n"):
        message = message.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if message and not message.endswith(b"\r\n"):
        message += b"\r\n"
    if message.startswith(b"."):
        message = b"." + message
    return message.replace(b"\r\n.", b"\r\n..") + b".\r\n"


def _top(message: bytes, lines: int) -> bytes:
    """Headers, the blank line, and the first ``lines`` lines of the body (RFC 1939 TOP)."""
    normal = message.replace(b"\r\n", b"\n")
    head, sep, body = normal.partition(b"\n\n")
    if not sep:
        return message
    kept = body.split(b"\n")[:lines] if lines else []
    out = head + b"\n\n" + b"\n".join(kept)
    if kept and not out.endswith(b"\n"):
        out += b"\n"
    return out.replace(b"\n", b"\r\n")


Handler = Callable[["Pop3Session", list[str]], None]


class Pop3Session:
    """One POP3 conversation with one client.

    Args:
        backend: authenticates users and opens their maildrops.
        tls_available: a certificate is configured, so STLS can be offered.
        tls_active: the connection is already TLS (implicit TLS on 995, or after STLS).
        plaintext_login: allow USER/PASS and AUTH PLAIN without TLS (RFC 2595 section 2.3
            lets a server refuse them; a development server on loopback may allow them).
    """

    def __init__(
        self,
        backend: Pop3Backend,
        *,
        tls_available: bool = False,
        tls_active: bool = False,
        plaintext_login: bool = True,
    ) -> None:
        self.backend = backend
        self.tls_available = tls_available
        self.tls_active = tls_active
        self.plaintext_login = plaintext_login
        self.state = Pop3State.AUTHORIZATION
        self.user: str | None = None
        self._lines = LineBuffer(MAX_LINE)
        self._out: list[Event] = []
        self._maildrop: Pop3Maildrop | None = None
        self._listing: Sequence[tuple[str, int]] = ()
        self._deleted: set[int] = set()
        self._rest = ""  # the current command line after the keyword, spaces kept

    # -- I/O surface -----------------------------------------------------------------------

    def greeting(self) -> list[Event]:
        """The server's first line (RFC 1939 section 4)."""
        return [Send(data=R_GREETING + b"\r\n")]

    def receive(self, data: bytes) -> list[Event]:
        """Feed bytes from the client; return the events they cause, in order."""
        self._lines.feed(data)
        while self.state is not Pop3State.CLOSED:
            line = self._lines.next_line()
            if line is None:
                break
            if line is LINE_TOO_LONG:
                self._reply(R_LINE_TOO_LONG)
                continue
            self._line(line.rstrip(b"\r"))
            if self._out and isinstance(self._out[-1], StartTls):
                # RFC 2595 section 3.1 / CVE-2011-0411: bytes pipelined after STLS were sent
                # in the clear and must not be read as if they came over TLS.
                self._lines.clear()
                break
        out, self._out = self._out, []
        return out

    def pending(self) -> bool:
        """Always false: every POP3 reply is one message at most (bounded by its size)."""
        return False

    def connection_lost(self) -> None:
        """The client went away: no UPDATE state, release the lock (RFC 1939 section 6)."""
        if self._maildrop is not None:
            self._maildrop.release()
            self._maildrop = None
        self.state = Pop3State.CLOSED

    def tls_started(self) -> None:
        """The I/O layer finished the TLS handshake after :class:`StartTls`."""
        self.tls_active = True

    def capabilities(self) -> list[bytes]:
        """The CAPA list for the current state (RFC 2449 section 6)."""
        caps = [b"TOP", b"UIDL", b"RESP-CODES", b"AUTH-RESP-CODE", b"PIPELINING"]
        caps.append(b"IMPLEMENTATION portkit")
        if self.state is not Pop3State.TRANSACTION:
            if self._login_allowed():
                caps += [b"USER", b"SASL PLAIN"]
            if self.tls_available and not self.tls_active:
                caps.append(b"STLS")
        return caps

    # -- the table --------------------------------------------------------------------------

    def transition(self, command: str, args: list[str]) -> None:
        """Run ``command`` in the current state; raise if the table has no such move."""
        handler = TRANSITIONS.get((self.state, command))
        if handler is None:
            raise LocalProtocolError(
                f"pop3 command {command!r} is not allowed in state {self.state.value!r}"
            )
        handler(self, args)

    def _line(self, line: bytes) -> None:
        if self.state is Pop3State.AUTHORIZATION_SASL:
            self._sasl_response(line)
            return
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            self._reply(R_BAD_ARGS)
            return
        # RFC 1939 section 3: keywords are case-insensitive, arguments separated by spaces.
        parts = text.split(" ")
        command, args = parts[0].upper(), [a for a in parts[1:] if a]
        self._rest = text.partition(" ")[2]
        if (self.state, command) not in TRANSITIONS:
            if self.state is Pop3State.AUTHORIZATION_USER and command != "QUIT":
                self.state = Pop3State.AUTHORIZATION  # PASS must follow USER directly
            self._reply(R_APOP_NA if command == "APOP" else R_UNKNOWN)
            return
        self.transition(command, args)

    def _reply(self, line: bytes) -> None:
        self._out.append(Send(data=line + b"\r\n"))

    def _multi(self, first: bytes, body: bytes) -> None:
        self._out.append(Send(data=first + b"\r\n" + body))

    def _login_allowed(self) -> bool:
        return self.plaintext_login or self.tls_active

    # -- AUTHORIZATION (RFC 1939 section 4 and 7, RFC 5034) ----------------------------------

    def _capa(self, args: list[str]) -> None:
        body = b"".join(c + b"\r\n" for c in self.capabilities()) + b".\r\n"
        self._multi(b"+OK capability list follows", body)

    def _user(self, args: list[str]) -> None:
        if not self._login_allowed():
            self._reply(R_PLAIN_NEEDS_TLS)
            return
        if len(args) != 1:
            self._reply(R_BAD_ARGS)
            return
        self.user = args[0]
        self.state = Pop3State.AUTHORIZATION_USER
        self._reply(R_USER_OK)

    def _pass(self, args: list[str]) -> None:
        # RFC 1939 section 7: the password may contain spaces; it is the rest of the line.
        assert self.user is not None
        self._login(self.user, self._rest if args else "")

    def _auth(self, args: list[str]) -> None:
        if not args:
            # RFC 5034 does not define bare AUTH; many clients send it to list mechanisms.
            self._multi(b"+OK", b"PLAIN\r\n.\r\n")
            return
        if args[0].upper() != "PLAIN" or len(args) > 2:
            self._reply(R_SASL_MECH)
            return
        if not self._login_allowed():
            self._reply(R_PLAIN_NEEDS_TLS)
            return
        if len(args) == 2:  # initial response (RFC 5034 section 4)
            self._sasl_response(args[1].encode("ascii"))
            return
        self.state = Pop3State.AUTHORIZATION_SASL
        self._reply(R_CONTINUE)

    def _sasl_response(self, line: bytes) -> None:
        self.state = Pop3State.AUTHORIZATION
        if line == b"*":
            self._reply(R_SASL_CANCELLED)
            return
        fields = decode_sasl_plain(line)
        if fields is None:
            self._reply(R_SASL_BAD)
            return
        authzid, authcid, passwd = fields
        if authzid and authzid != authcid:
            self._out.append(LoginFailed(user=authcid))
            self._reply(R_AUTH_FAILED)
            return
        self._login(authcid, passwd)

    def _login(self, user: str, password: str) -> None:
        self.state = Pop3State.AUTHORIZATION
        if not self.backend.authenticate(user, password):
            self.user = None
            self._out.append(LoginFailed(user=user))
            self._reply(R_AUTH_FAILED)
            return
        try:
            self._maildrop = self.backend.open_maildrop(user)
        except PortkitError:
            self._reply(R_IN_USE)
            return
        except OSError:
            self._reply(R_SYS_TEMP)
            return
        self.user = user
        self._listing = list(self._maildrop.listing())
        self._deleted = set()
        self.state = Pop3State.TRANSACTION
        self._out.append(LoginSucceeded(user=user))
        count, size = self._stat()
        self._reply(R_LOGGED_IN + b" (%d messages, %d octets)" % (count, size))

    def _stls(self, args: list[str]) -> None:
        if self.tls_active:
            self._reply(R_STLS_ACTIVE)
        elif not self.tls_available:
            self._reply(R_STLS_NA)
        else:
            self._reply(R_STLS_GO)
            self._out.append(StartTls())

    def _quit_authorization(self, args: list[str]) -> None:
        self.state = Pop3State.CLOSED
        self._reply(R_BYE)
        self._out.append(Close())

    # -- TRANSACTION (RFC 1939 section 5, RFC 1939 section 7 TOP/UIDL) -----------------------

    def _stat(self) -> tuple[int, int]:
        live = [size for i, (_, size) in enumerate(self._listing) if i not in self._deleted]
        return len(live), sum(live)

    def _msg_arg(self, arg: str) -> int | None:
        """The 0-based index for a message-number argument, replying -ERR if invalid."""
        if not arg.isdigit() or not 1 <= int(arg) <= len(self._listing):
            self._reply(R_NO_SUCH_MSG)
            return None
        index = int(arg) - 1
        if index in self._deleted:
            self._reply(R_DELETED)
            return None
        return index

    def _do_stat(self, args: list[str]) -> None:
        if args:
            self._reply(R_BAD_ARGS)
            return
        count, size = self._stat()
        self._reply(b"+OK %d %d" % (count, size))

    def _scan_listing(self, args: list[str], value: Callable[[int], bytes], what: bytes) -> None:
        if len(args) > 1:
            self._reply(R_BAD_ARGS)
            return
        if args:
            index = self._msg_arg(args[0])
            if index is not None:
                self._reply(b"+OK %d %s" % (index + 1, value(index)))
            return
        body = b"".join(
            b"%d %s\r\n" % (i + 1, value(i))
            for i in range(len(self._listing))
            if i not in self._deleted
        )
        self._multi(b"+OK " + what, body + b".\r\n")

    def _list(self, args: list[str]) -> None:
        self._scan_listing(args, lambda i: b"%d" % self._listing[i][1], b"scan listing follows")

    def _uidl(self, args: list[str]) -> None:
        self._scan_listing(
            args, lambda i: self._listing[i][0].encode("ascii"), b"unique-id listing follows"
        )

    def _retr(self, args: list[str]) -> None:
        if len(args) != 1:
            self._reply(R_BAD_ARGS)
            return
        index = self._msg_arg(args[0])
        if index is None:
            return
        assert self._maildrop is not None
        data = self._maildrop.read(index)
        self._multi(b"+OK %d octets" % len(data), byte_stuff(data))

    def _top_cmd(self, args: list[str]) -> None:
        if len(args) != 2 or not args[1].isdigit():
            self._reply(R_BAD_ARGS)
            return
        index = self._msg_arg(args[0])
        if index is None:
            return
        assert self._maildrop is not None
        self._multi(
            b"+OK top of message follows",
            byte_stuff(_top(self._maildrop.read(index), int(args[1]))),
        )

    def _dele(self, args: list[str]) -> None:
        if len(args) != 1:
            self._reply(R_BAD_ARGS)
            return
        index = self._msg_arg(args[0])
        if index is not None:
            self._deleted.add(index)
            self._reply(b"+OK message %d deleted" % (index + 1))

    def _noop(self, args: list[str]) -> None:
        self._reply(R_NOOP)

    def _rset(self, args: list[str]) -> None:
        self._deleted.clear()
        self._reply(R_RSET)

    def _quit_transaction(self, args: list[str]) -> None:
        # RFC 1939 section 6: the UPDATE state removes deleted messages and releases the lock.
        assert self._maildrop is not None
        maildrop, self._maildrop = self._maildrop, None
        self.state = Pop3State.CLOSED
        try:
            maildrop.commit(sorted(self._deleted))
        except OSError:
            self._reply(b"-ERR [SYS/TEMP] some deleted messages not removed")
        else:
            self._reply(R_BYE_UPDATED)
        finally:
            maildrop.release()
        self._out.append(Close())


_A = Pop3State.AUTHORIZATION
_AU = Pop3State.AUTHORIZATION_USER
_T = Pop3State.TRANSACTION

#: Every legal (state, command) pair and what it does. Anything else is ``-ERR``.
TRANSITIONS: dict[tuple[Pop3State, str], Handler] = {
    (_A, "CAPA"): Pop3Session._capa,
    (_A, "USER"): Pop3Session._user,
    (_A, "AUTH"): Pop3Session._auth,
    (_A, "STLS"): Pop3Session._stls,
    (_A, "QUIT"): Pop3Session._quit_authorization,
    (_AU, "PASS"): Pop3Session._pass,
    (_AU, "QUIT"): Pop3Session._quit_authorization,
    (_T, "CAPA"): Pop3Session._capa,
    (_T, "STAT"): Pop3Session._do_stat,
    (_T, "LIST"): Pop3Session._list,
    (_T, "UIDL"): Pop3Session._uidl,
    (_T, "RETR"): Pop3Session._retr,
    (_T, "TOP"): Pop3Session._top_cmd,
    (_T, "DELE"): Pop3Session._dele,
    (_T, "NOOP"): Pop3Session._noop,
    (_T, "RSET"): Pop3Session._rset,
    (_T, "QUIT"): Pop3Session._quit_transaction,
}

#: The commands a client can send (for exhaustive state/command tests).
COMMANDS = frozenset(
    {"CAPA", "USER", "PASS", "APOP", "AUTH", "STLS", "QUIT", "STAT", "LIST", "UIDL"}
    | {"RETR", "TOP", "DELE", "NOOP", "RSET"}
)
