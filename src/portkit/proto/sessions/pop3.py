"""POP3 server session as a sans-io state machine (RFC 1939, RFC 2449 CAPA, RFC 2595 STLS).

Bytes from the client go in through :meth:`Pop3Session.receive`; what comes out is a list
of events for the I/O layer: :class:`Send` (bytes to write), :class:`StartTls` (upgrade the
transport now, after the ``+OK`` that precedes it), :class:`LoginFailed` (so the host can
delay and count it per source) and :class:`Close`. No sockets, no asyncio.

The session's legal moves are one table, :data:`TRANSITIONS`: ``(state, command) ->
(handler, the states it may lead to)``; the handler returns where it went and
``_dispatch`` is the one place that moves the session. A known command that is not in the
table for the current state gets ``-ERR`` naming both. The SASL response line after
``AUTH PLAIN`` is dispatched as the pseudo-command :data:`CONTINUATION`.
The receive loop, end of input and the STLS guard come from
:class:`~portkit.proto.sessions._line.LineSession`.

The mail itself comes from a :class:`Pop3Backend`, which authenticates and opens the
maildrop (taking the exclusive lock of RFC 1939 section 8).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, Unpack

from portkit._errors import PortkitError
from portkit.proto.sessions._line import (
    MAX_BAD_COMMANDS,
    Close,
    Event,
    LineOptions,
    LineSession,
    LoginFailed,
    LoginSucceeded,
    Send,
    StartTls,
    Transition,
    decode_sasl_plain,
)

__all__ = [
    "COMMANDS",
    "CONTINUATION",
    "MAX_BAD_COMMANDS",
    "MAX_LINE",
    "TRANSITIONS",
    "Close",
    "Event",
    "LoginFailed",
    "LoginSucceeded",
    "Pop3Backend",
    "Pop3Command",
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
#: The pseudo-command the SASL response line is dispatched as.
CONTINUATION = "(continuation line)"


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
R_TOO_MANY_BAD = b"-ERR too many invalid commands, closing"
R_NOT_ALLOWED = b"-ERR command %s is not allowed in state %s"
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


def _is_number(arg: str) -> bool:
    """A message number or line count: ASCII digits only (``str.isdigit`` takes "²" too)."""
    return arg.isascii() and arg.isdigit()


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


@dataclass(slots=True, kw_only=True)
class Pop3Command:
    """One command line: the keyword in upper case, its arguments, the text after it."""

    name: str
    args: list[str]
    rest: str = ""  # everything after the keyword and one space, spaces kept (PASS)
    line: bytes = b""  # the whole line as sent (a SASL response)


Handler = Callable[["Pop3Session", Pop3Command], "Pop3State | None"]


class Pop3Session(LineSession):
    """One POP3 conversation with one client.

    Args:
        backend: authenticates users and opens their maildrops.
        tls_available: a certificate is configured, so STLS can be offered.
        tls_active: the connection is already TLS (implicit TLS on 995, or after STLS).
        plaintext_login: allow USER/PASS and AUTH PLAIN without TLS (RFC 2595 section 2.3
            lets a server refuse them; a development server on loopback may allow them).
        max_bad_commands: invalid commands allowed before login; the next one ends the
            session (``-ERR``, then :class:`Close`).
    """

    def __init__(self, backend: Pop3Backend, **options: Unpack[LineOptions]) -> None:
        super().__init__(max_line=MAX_LINE, **options)
        self.backend = backend
        self.state = Pop3State.AUTHORIZATION
        self._maildrop: Pop3Maildrop | None = None
        self._listing: Sequence[tuple[str, int]] = ()
        self._deleted: set[int] = set()

    # -- I/O surface -----------------------------------------------------------------------

    def greeting(self) -> list[Event]:
        """The server's first line (RFC 1939 section 4)."""
        return [Send(data=R_GREETING + b"\r\n")]

    @property
    def closed(self) -> bool:
        return self.state is Pop3State.CLOSED

    def connection_lost(self) -> None:
        """The client went away: no UPDATE state, release the lock (RFC 1939 section 6)."""
        if self._maildrop is not None:
            self._maildrop.release()
            self._maildrop = None
        self.state = Pop3State.CLOSED

    def quick(self, data: bytes | None) -> bool:
        """Commands on an open maildrop only read its fixed listing and message files (or
        mark deletions, applied at QUIT): quick. Logins, and QUIT's deletions, are not."""
        if self.state is not Pop3State.TRANSACTION:
            return False
        if data is None:
            return True  # the rest of a long RETR
        lines = self._complete_lines(data)
        return lines is not None and all(
            line.split(b" ", 1)[0].strip().upper() in _QUICK for line in lines
        )

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

    def _line_too_long(self) -> None:
        self._refuse(R_LINE_TOO_LONG)

    def _line(self, line: bytes) -> None:
        if self.state is Pop3State.AUTHORIZATION_SASL:
            self._dispatch(Pop3Command(name=CONTINUATION, args=[], line=line))
            return
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            self._refuse(R_BAD_ARGS)
            return
        # RFC 1939 section 3: keywords are case-insensitive, arguments separated by spaces.
        parts = text.split(" ")
        command = Pop3Command(
            name=parts[0].upper(),
            args=[a for a in parts[1:] if a],
            rest=text.partition(" ")[2],
            line=line,
        )
        if (self.state, command.name) in TRANSITIONS:
            self._dispatch(command)
            return
        # PASS must follow USER directly: anything else starts the login over.
        after = _AFTER_REFUSAL.get(self.state, self.state)
        if command.name == "APOP":
            self._refuse(R_APOP_NA)
        elif command.name in COMMANDS:
            self._refuse(R_NOT_ALLOWED % (command.name.encode(), self.state.value.encode()))
        else:
            self._refuse(R_UNKNOWN)
        if self.state is not Pop3State.CLOSED:
            self.state = after

    def _refuse(self, line: bytes) -> None:
        """Answer a command that cannot run; before login, too many of them end the session."""
        self._reply(line)
        if self.state is not Pop3State.TRANSACTION and self._too_many_bad():
            self._reply(R_TOO_MANY_BAD)
            self._out.append(Close())
            self.connection_lost()

    def _dispatch(self, command: Pop3Command) -> None:
        """Run a command by the table and move to the state it leads to."""
        transition = TRANSITIONS[(self.state, command.name)]
        target = transition.handler(self, command)
        self.state = transition.lands("pop3", command.name, self.state, target)

    def _reply(self, line: bytes) -> None:
        self._send_line(line)

    def _multi(self, first: bytes, body: bytes) -> None:
        self._out.append(Send(data=first + b"\r\n" + body))

    # -- AUTHORIZATION (RFC 1939 section 4 and 7, RFC 5034) ----------------------------------

    def _capa(self, cmd: Pop3Command) -> None:
        body = b"".join(c + b"\r\n" for c in self.capabilities()) + b".\r\n"
        self._multi(b"+OK capability list follows", body)

    def _user(self, cmd: Pop3Command) -> Pop3State | None:
        if not self._login_allowed():
            self._reply(R_PLAIN_NEEDS_TLS)
            return None
        if len(cmd.args) != 1:
            self._reply(R_BAD_ARGS)
            return None
        self.user = cmd.args[0]
        self._reply(R_USER_OK)
        return Pop3State.AUTHORIZATION_USER

    def _pass(self, cmd: Pop3Command) -> Pop3State:
        # RFC 1939 section 7: the password may contain spaces; it is the rest of the line.
        assert self.user is not None
        return self._login(self.user, cmd.rest if cmd.args else "")

    def _auth(self, cmd: Pop3Command) -> Pop3State | None:
        args = cmd.args
        if not args:
            # RFC 5034 does not define bare AUTH; many clients send it to list mechanisms.
            self._multi(b"+OK", b"PLAIN\r\n.\r\n")
            return None
        if args[0].upper() != "PLAIN" or len(args) > 2:
            self._reply(R_SASL_MECH)
            return None
        if not self._login_allowed():
            self._reply(R_PLAIN_NEEDS_TLS)
            return None
        if len(args) == 2:  # initial response (RFC 5034 section 4)
            return self._sasl_plain(args[1].encode("ascii"))
        self._reply(R_CONTINUE)
        return Pop3State.AUTHORIZATION_SASL

    def _sasl_response(self, cmd: Pop3Command) -> Pop3State:
        if cmd.line == b"*":
            self._reply(R_SASL_CANCELLED)
            return Pop3State.AUTHORIZATION
        return self._sasl_plain(cmd.line)

    def _sasl_plain(self, response: bytes) -> Pop3State:
        fields = decode_sasl_plain(response)
        if fields is None:
            self._reply(R_SASL_BAD)
            return Pop3State.AUTHORIZATION
        authzid, authcid, passwd = fields
        if authzid and authzid != authcid:
            self._out.append(LoginFailed(user=authcid))
            self._reply(R_AUTH_FAILED)
            return Pop3State.AUTHORIZATION
        return self._login(authcid, passwd)

    def _login(self, user: str, password: str) -> Pop3State:
        if not self.backend.authenticate(user, password):
            self.user = None
            self._out.append(LoginFailed(user=user))
            self._reply(R_AUTH_FAILED)
            return Pop3State.AUTHORIZATION
        try:
            self._maildrop = self.backend.open_maildrop(user)
        except PortkitError:
            self._reply(R_IN_USE)
            return Pop3State.AUTHORIZATION
        except OSError:
            self._reply(R_SYS_TEMP)
            return Pop3State.AUTHORIZATION
        self.user = user
        self._listing = list(self._maildrop.listing())
        self._deleted = set()
        self._out.append(LoginSucceeded(user=user))
        count, size = self._stat()
        self._reply(R_LOGGED_IN + b" (%d messages, %d octets)" % (count, size))
        return Pop3State.TRANSACTION

    def _stls(self, cmd: Pop3Command) -> None:
        self._start_tls(active=R_STLS_ACTIVE, unavailable=R_STLS_NA, go=R_STLS_GO)

    def _quit_authorization(self, cmd: Pop3Command) -> Pop3State:
        self._reply(R_BYE)
        self._out.append(Close())
        return Pop3State.CLOSED

    # -- TRANSACTION (RFC 1939 section 5, RFC 1939 section 7 TOP/UIDL) -----------------------

    def _stat(self) -> tuple[int, int]:
        live = [size for i, (_, size) in enumerate(self._listing) if i not in self._deleted]
        return len(live), sum(live)

    def _msg_arg(self, arg: str) -> int | None:
        """The 0-based index for a message-number argument, replying -ERR if invalid."""
        if not _is_number(arg) or not 1 <= int(arg) <= len(self._listing):
            self._reply(R_NO_SUCH_MSG)
            return None
        index = int(arg) - 1
        if index in self._deleted:
            self._reply(R_DELETED)
            return None
        return index

    def _do_stat(self, cmd: Pop3Command) -> None:
        args = cmd.args
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

    def _list(self, cmd: Pop3Command) -> None:
        args = cmd.args
        self._scan_listing(args, lambda i: b"%d" % self._listing[i][1], b"scan listing follows")

    def _uidl(self, cmd: Pop3Command) -> None:
        args = cmd.args
        self._scan_listing(
            args, lambda i: self._listing[i][0].encode("ascii"), b"unique-id listing follows"
        )

    def _message_of(self, cmd: Pop3Command, arity: int = 1) -> int | None:
        """The message a command's first argument names, after checking it has ``arity``
        arguments and the others are numbers; ``None`` once the error is answered."""
        args = cmd.args
        if len(args) != arity or not all(_is_number(a) for a in args[1:]):
            self._reply(R_BAD_ARGS)
            return None
        return self._msg_arg(args[0])

    def _retr(self, cmd: Pop3Command) -> None:
        index = self._message_of(cmd)
        if index is None:
            return
        assert self._maildrop is not None
        data = self._maildrop.read(index)
        self._multi(b"+OK %d octets" % len(data), byte_stuff(data))

    def _top_cmd(self, cmd: Pop3Command) -> None:
        index = self._message_of(cmd, arity=2)  # RFC 1939 section 7: TOP msg n
        if index is None:
            return
        assert self._maildrop is not None
        self._multi(
            b"+OK top of message follows",
            byte_stuff(_top(self._maildrop.read(index), int(cmd.args[1]))),
        )

    def _dele(self, cmd: Pop3Command) -> None:
        index = self._message_of(cmd)
        if index is not None:
            self._deleted.add(index)
            self._reply(b"+OK message %d deleted" % (index + 1))

    def _noop(self, cmd: Pop3Command) -> None:
        self._reply(R_NOOP)

    def _rset(self, cmd: Pop3Command) -> None:
        self._deleted.clear()
        self._reply(R_RSET)

    def _quit_transaction(self, cmd: Pop3Command) -> Pop3State:
        # RFC 1939 section 6: the UPDATE state removes deleted messages and releases the lock.
        assert self._maildrop is not None
        maildrop, self._maildrop = self._maildrop, None
        try:
            maildrop.commit(sorted(self._deleted))
        except OSError:
            self._reply(b"-ERR [SYS/TEMP] some deleted messages not removed")
        else:
            self._reply(R_BYE_UPDATED)
        finally:
            maildrop.release()
        self._out.append(Close())
        return Pop3State.CLOSED


# RFC 1939 section 5: the TRANSACTION commands that neither check a password nor change a file.
_QUICK = frozenset({b"STAT", b"LIST", b"RETR", b"TOP", b"UIDL", b"NOOP", b"DELE", b"RSET"})

_A = Pop3State.AUTHORIZATION
_AU = Pop3State.AUTHORIZATION_USER
_AS = Pop3State.AUTHORIZATION_SASL
_T = Pop3State.TRANSACTION
_C = Pop3State.CLOSED
P = Pop3Session


def _row(handler: Handler, *to: Pop3State) -> Transition[Handler, Pop3State]:
    return Transition(handler, frozenset(to))


#: Every legal (state, command) pair, its handler and the states it can lead to. Anything
#: else is ``-ERR``. In AUTHORIZATION_SASL the only input is the SASL response line.
TRANSITIONS: dict[tuple[Pop3State, str], Transition[Handler, Pop3State]] = {
    (_A, "CAPA"): _row(P._capa, _A),
    (_A, "USER"): _row(P._user, _A, _AU),
    (_A, "AUTH"): _row(P._auth, _A, _AS, _T),
    (_A, "STLS"): _row(P._stls, _A),
    (_A, "QUIT"): _row(P._quit_authorization, _C),
    (_AU, "PASS"): _row(P._pass, _A, _T),
    (_AU, "QUIT"): _row(P._quit_authorization, _C),
    (_AS, CONTINUATION): _row(P._sasl_response, _A, _T),
    (_T, "CAPA"): _row(P._capa, _T),
    (_T, "STAT"): _row(P._do_stat, _T),
    (_T, "LIST"): _row(P._list, _T),
    (_T, "UIDL"): _row(P._uidl, _T),
    (_T, "RETR"): _row(P._retr, _T),
    (_T, "TOP"): _row(P._top_cmd, _T),
    (_T, "DELE"): _row(P._dele, _T),
    (_T, "NOOP"): _row(P._noop, _T),
    (_T, "RSET"): _row(P._rset, _T),
    (_T, "QUIT"): _row(P._quit_transaction, _C),
}

#: Where a refused command leaves the session: PASS must follow USER directly.
_AFTER_REFUSAL = {_AU: _A}

#: The commands a client can send (for exhaustive state/command tests).
COMMANDS = frozenset(
    {"CAPA", "USER", "PASS", "APOP", "AUTH", "STLS", "QUIT", "STAT", "LIST", "UIDL"}
    | {"RETR", "TOP", "DELE", "NOOP", "RSET"}
)
