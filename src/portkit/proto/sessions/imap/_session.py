"""The IMAP4rev1 server session (RFC 3501): states, the transition table, the handlers.

Every legal move is one row of :data:`TRANSITIONS`: ``(state, command) -> (handler, the
states it may lead to)``. The handler answers and returns the state to move to (``None``:
stay); :meth:`ImapSession._dispatch` is the one place that moves the session, and refuses
a move the table does not list. A command the table lacks for the current state is
answered ``BAD`` naming both. Commands that never move the session are answered by the
part they are about: the user's mailboxes (:class:`Account`) or the selected mailbox
(:class:`Selection`).

AUTHENTICATING (RFC 3501 section 6.2.2, after ``+``) and IDLE (RFC 2177, after ``+
idling``) are states like the others: the line the client sends next is not a tagged
command but a continuation, dispatched as the pseudo-command :data:`CONTINUATION` with the
line as its one argument and the tag of the command it continues.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator, Sequence
from typing import Unpack

from portkit._errors import RemoteProtocolError
from portkit.proto.sessions._line import (
    LINE_TOO_LONG,
    MAX_BAD_COMMANDS,
    Close,
    Event,
    LineOptions,
    LineSession,
    LoginFailed,
    LoginSucceeded,
    Send,
    Transition,
    decode_sasl_plain,
)
from portkit.proto.sessions.imap._account import R_NO_MAILBOX, Account
from portkit.proto.sessions.imap._framing import MAX_LINE, R_LINE_TOO_LONG, CommandReader, Reply
from portkit.proto.sessions.imap._grammar import (
    BadCommand,
    Command,
    astring,
    is_inbox,
    parse_flags,
)
from portkit.proto.sessions.imap._mailbox import ImapBackend
from portkit.proto.sessions.imap._selected import R_TRYCREATE, Selection

__all__ = [
    "COMMANDS",
    "CONTINUATION",
    "MAX_BAD_COMMANDS",
    "MAX_COMMAND",
    "MAX_COMMAND_UNAUTHENTICATED",
    "MAX_LITERAL",
    "OUTPUT_BATCH",
    "TRANSITIONS",
    "ImapSession",
    "ImapState",
]

#: Default largest literal accepted; bigger ones are refused before they are sent.
MAX_LITERAL = 1024 * 1024
#: Default cap on one whole command (lines and literals) after login.
MAX_COMMAND = 2 * 1024 * 1024
#: Cap on one whole command before login: enough for LOGIN or AUTHENTICATE with literals.
MAX_COMMAND_UNAUTHENTICATED = 64 * 1024
#: FETCH output is produced in batches of about this many octets (bounded memory).
OUTPUT_BATCH = 256 * 1024
#: The pseudo-command a continuation line is dispatched as (AUTHENTICATING and IDLE).
CONTINUATION = "(continuation line)"


class ImapState(enum.Enum):
    """The states of RFC 3501 section 3, plus the waits for a SASL response and for DONE."""

    NOT_AUTHENTICATED = "not authenticated"
    AUTHENTICATING = "authenticating"  # AUTHENTICATE sent "+", waiting for the response
    AUTHENTICATED = "authenticated"
    SELECTED = "selected"
    IDLE = "idle"  # RFC 2177: waiting for DONE, pushing updates
    LOGOUT = "logout"


# Named replies. Response codes: RFC 3501 section 7.1, RFC 5530.
R_GREETING = b"* OK [CAPABILITY %s] portkit IMAP4rev1 server ready"
R_BYE = b"* BYE portkit IMAP4rev1 server logging out"
R_CONTINUE_SASL = b"+ "
R_CONTINUE_IDLE = b"+ idling"
R_AUTH_FAILED = b"NO [AUTHENTICATIONFAILED] invalid user name or password"
R_LOGIN_DISABLED = b"NO [PRIVACYREQUIRED] plaintext login needs tls first (use STARTTLS)"
R_TLS_NA = b"BAD tls not available"
R_TLS_ACTIVE = b"BAD tls already active"
R_TLS_GO = b"OK begin tls negotiation now"
R_IDLE_NOT_DONE = b"BAD expected DONE to end IDLE"
R_TOO_MANY_BAD = b"* BYE too many invalid commands"

Handler = Callable[["ImapSession", Command], "ImapState | None"]


class ImapSession(LineSession):
    """One IMAP conversation with one client.

    Bytes go in through :meth:`receive`, events come out (see :mod:`portkit.proto.sessions._line`).
    A FETCH of many messages answers in batches of about :data:`OUTPUT_BATCH` octets: while
    :meth:`pending` is true, call :meth:`resume` after sending what came out. While a
    client idles (RFC 2177) the I/O layer calls :meth:`poll` now and then.

    Args:
        backend: authenticates users and gives their INBOX.
        tls_available: a certificate is configured, so STARTTLS can be offered.
        tls_active: the connection is already TLS (993, or after STARTTLS).
        plaintext_login: allow LOGIN/AUTHENTICATE without TLS (otherwise LOGINDISABLED,
            RFC 3501 section 6.2.3).
        max_literal: the largest literal accepted (refused before it is sent).
        max_command: the most octets one command may hold after login, lines and literals
            together (never less than ``max_literal`` plus a line).
        max_command_unauthenticated: the same before login (and during AUTHENTICATE).
        max_bad_commands: commands answered ``BAD`` allowed before login; the next one
            ends the session (``* BYE``, then :class:`Close`).
    """

    def __init__(
        self,
        backend: ImapBackend,
        *,
        max_literal: int = MAX_LITERAL,
        max_command: int = MAX_COMMAND,
        max_command_unauthenticated: int = MAX_COMMAND_UNAUTHENTICATED,
        **options: Unpack[LineOptions],
    ) -> None:
        super().__init__(max_line=MAX_LINE, **options)
        self.backend = backend
        self.max_literal = max_literal
        self.max_command = max(max_command, max_literal + MAX_LINE)
        self.max_command_unauthenticated = max_command_unauthenticated
        self.state = ImapState.NOT_AUTHENTICATED
        self._reader = CommandReader(
            self._lines,
            max_literal=max_literal,
            max_command=self.max_command,
            max_command_unauthenticated=max_command_unauthenticated,
        )
        self._selection: Selection | None = None
        self._continued = ""  # the tag of the command a continuation line belongs to
        self._job: Iterator[None] | None = None  # a FETCH answering in batches

    @property
    def read_only(self) -> bool:
        """The selected mailbox was opened with EXAMINE."""
        return self._selection is not None and self._selection.read_only

    # -- I/O surface -----------------------------------------------------------------------

    def greeting(self) -> list[Event]:
        """The untagged OK greeting with the capabilities (RFC 3501 section 7.1.1)."""
        return [Send(data=R_GREETING % self._capability_text() + b"\r\n")]

    @property
    def closed(self) -> bool:
        return self.state is ImapState.LOGOUT

    def pending(self) -> bool:
        """Whether a command's output is not complete yet (see :meth:`resume`)."""
        return self._job is not None

    def quick(self, data: bytes | None) -> bool:
        """FETCH and SEARCH on the selected mailbox (and a FETCH answering in batches) read
        message files and the snapshot the mailbox keeps: quick. CAPABILITY and LOGOUT
        touch no store in any state. SELECT and EXAMINE are quick while the backend says
        the INBOX opens from what it knows. Everything else, and any line with a literal
        (RFC 3501 section 4.3), goes the safe way."""
        if self.state in (ImapState.AUTHENTICATING, ImapState.IDLE):
            return False  # a continuation line: a password, or DONE
        if data is None:
            return self._job is not None and self.state is ImapState.SELECTED
        if self._job is not None or self._reader.buffered():
            return False
        lines = self._complete_lines(data)
        if not lines:
            return False
        quick = _QUICK_SELECTED if self.state is ImapState.SELECTED else _QUICK_ANY
        for line in lines:
            words = line.rstrip(b"\r").split(b" ", 3)
            if len(words) < 2 or line.rstrip(b"\r").endswith(b"}"):
                return False
            name = words[1].upper()
            if name == b"UID" and len(words) > 2:
                name = b"UID " + words[2].upper()
            if name not in quick and not (name in _OPENING and self._inbox_ready()):
                return False
        return True

    def _inbox_ready(self) -> bool:
        if self.user is None or self.state not in _OPEN_FROM:
            return False
        return self.backend.inbox_ready(self.user)

    def poll(self) -> list[Event]:
        """While idling (RFC 2177), report mailbox changes; otherwise nothing."""
        if self.state is ImapState.IDLE and self._selection is not None:
            self._selection.sync(expunges=True)
        out, self._out = self._out, []
        return out

    def buffered(self) -> int:
        return super().buffered() + self._reader.buffered()

    def connection_lost(self) -> None:
        """The client went away: an answer in progress is abandoned."""
        self._job = None
        self._move(ImapState.LOGOUT)

    # -- input ------------------------------------------------------------------------------

    def _work(self) -> None:
        """Advance the command in progress until it ends or a batch of output is ready."""
        if self._job is None:
            return
        start = len(self._out)
        size = 0
        for _ in self._job:
            size += sum(len(e.data) for e in self._out[start:] if isinstance(e, Send))
            start = len(self._out)
            if size >= OUTPUT_BATCH:
                return
        self._job = None

    def _read(self) -> bool:
        if self.state in (ImapState.AUTHENTICATING, ImapState.IDLE):
            line = self._lines.next_line()
            if line is None:
                return False
            if line is LINE_TOO_LONG:
                self._send_line(R_LINE_TOO_LONG)
                self._count_bad()
            else:
                self._dispatch(Command(tag=self._continued, name=CONTINUATION, args=[line]))
            return True
        result = self._reader.next()
        if result is None:
            return False
        if isinstance(result, Reply):
            self._out.append(Send(data=result.data))
            if result.close:
                self._move(ImapState.LOGOUT)
                self._out.append(Close())
            elif result.data.split(b" ", 2)[1:2] == [b"BAD"]:  # not a continuation request
                self._count_bad()
            return True
        if (self.state, result.name) in TRANSITIONS:
            self._dispatch(result)
            return True
        if result.name in COMMANDS:
            why = f"command {result.name} is not allowed in state {self.state.value}"
            self._tagged(result.tag, b"BAD " + why.encode("ascii"))
        else:
            why = f"unknown command {result.name}"
            self._tagged(result.tag, b"BAD " + why.encode("ascii", "replace"))
        self._count_bad()
        return True

    def _dispatch(self, command: Command) -> None:
        """Run a command by the table and move to the state it leads to."""
        transition = TRANSITIONS[(self.state, command.name)]
        try:
            target = transition.handler(self, command)
        except RemoteProtocolError as exc:  # BadCommand and the tokenizer's errors
            self._tagged(command.tag, b"BAD " + str(exc).encode("utf-8", "replace"))
            self._count_bad()
            return
        self._move(transition.lands("imap", command.name, self.state, target))

    def _count_bad(self) -> None:
        """A command was answered BAD; before login, too many of them end the session."""
        if (
            self.state in (ImapState.NOT_AUTHENTICATED, ImapState.AUTHENTICATING)
            and self._too_many_bad()
        ):
            self._send_line(R_TOO_MANY_BAD)
            self._move(ImapState.LOGOUT)
            self._out.append(Close())

    def _move(self, state: ImapState) -> None:
        self.state = state
        self._reader.logged_in = state not in (
            ImapState.NOT_AUTHENTICATED,
            ImapState.AUTHENTICATING,
        )
        if state in (ImapState.AUTHENTICATED, ImapState.LOGOUT):
            self._selection = None

    # -- output -----------------------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        self._out.append(Send(data=data))

    def _untagged(self, line: bytes) -> None:
        self._send_line(b"* " + line)

    def _tagged(self, tag: str, line: bytes) -> None:
        self._send_line(tag.encode("ascii") + b" " + line)

    def _ok(self, cmd: Command, text: str = "", code: bytes = b"") -> None:
        done = text or f"{cmd.name} completed"
        self._tagged(cmd.tag, b"OK " + (code + b" " if code else b"") + done.encode())

    # -- any state (RFC 3501 section 6.1) ---------------------------------------------------

    def _capability_text(self, state: ImapState | None = None) -> bytes:
        """The capabilities in ``state`` (by default the current one): they change at login."""
        caps = ["IMAP4rev1", "IDLE", "UNSELECT", "NAMESPACE", "SASL-IR"]
        if (state or self.state) is ImapState.NOT_AUTHENTICATED:
            if self.tls_available and not self.tls_active:
                caps.append("STARTTLS")
            caps.append("AUTH=PLAIN" if self._login_allowed() else "LOGINDISABLED")
        return " ".join(caps).encode("ascii")

    def _capability(self, cmd: Command) -> None:
        self._untagged(b"CAPABILITY " + self._capability_text())
        self._ok(cmd)

    def _noop(self, cmd: Command) -> None:
        # RFC 3501 6.1.2: NOOP (and CHECK) is how clients poll for new mail and expunges.
        if self._selection is not None:
            self._selection.sync(expunges=True)
        self._ok(cmd)

    def _logout(self, cmd: Command) -> ImapState:
        self._send_line(R_BYE)
        self._ok(cmd)
        self._out.append(Close())
        return ImapState.LOGOUT

    # -- not authenticated (RFC 3501 section 6.2) ---------------------------------------------

    def _starttls(self, cmd: Command) -> None:
        tag = cmd.tag.encode("ascii") + b" "
        self._start_tls(active=tag + R_TLS_ACTIVE, unavailable=tag + R_TLS_NA, go=tag + R_TLS_GO)

    def _login(self, cmd: Command) -> ImapState | None:
        if len(cmd.args) != 2:
            raise BadCommand("LOGIN takes a user name and a password")
        user, password = astring(cmd.args[0], "user"), astring(cmd.args[1], "password")
        if not self._login_allowed():
            self._tagged(cmd.tag, R_LOGIN_DISABLED)
            return None
        return self._complete_login(cmd, user, password)

    def _authenticate(self, cmd: Command) -> ImapState | None:
        if not cmd.args or len(cmd.args) > 2:
            raise BadCommand("AUTHENTICATE takes a mechanism and an optional initial response")
        if astring(cmd.args[0], "mechanism").upper() != "PLAIN":
            self._tagged(cmd.tag, b"NO unsupported authentication mechanism")
            return None
        if not self._login_allowed():
            self._tagged(cmd.tag, R_LOGIN_DISABLED)
            return None
        if len(cmd.args) == 2:  # SASL-IR, RFC 4959
            initial = astring(cmd.args[1], "initial response").encode()
            return self._sasl_plain(cmd, b"" if initial == b"=" else initial)
        self._continued = cmd.tag
        self._send_line(R_CONTINUE_SASL)
        return ImapState.AUTHENTICATING

    def _sasl_response(self, cmd: Command) -> ImapState:
        line = cmd.args[0]
        assert isinstance(line, bytes)
        if line.strip() == b"*":  # RFC 3501 6.2.2: the client cancels
            self._tagged(cmd.tag, b"BAD authentication cancelled")
            return ImapState.NOT_AUTHENTICATED
        return self._sasl_plain(cmd, line)

    def _sasl_plain(self, cmd: Command, response: bytes) -> ImapState:
        fields = decode_sasl_plain(response)
        if fields is None:
            self._tagged(cmd.tag, b"BAD malformed sasl response")
            return ImapState.NOT_AUTHENTICATED
        authzid, authcid, passwd = fields
        if authzid and authzid != authcid:
            self._out.append(LoginFailed(user=authcid))
            self._tagged(cmd.tag, R_AUTH_FAILED)
            return ImapState.NOT_AUTHENTICATED
        return self._complete_login(cmd, authcid, passwd)

    def _complete_login(self, cmd: Command, user: str, password: str) -> ImapState:
        if not self.backend.authenticate(user, password):
            self._out.append(LoginFailed(user=user))
            self._tagged(cmd.tag, R_AUTH_FAILED)
            return ImapState.NOT_AUTHENTICATED
        self.user = user
        self._out.append(LoginSucceeded(user=user))
        caps = self._capability_text(ImapState.AUTHENTICATED)
        self._ok(cmd, "logged in", b"[CAPABILITY " + caps + b"]")
        return ImapState.AUTHENTICATED

    # -- authenticated (RFC 3501 section 6.3) -------------------------------------------------

    def _account(self) -> Account:
        assert self.user is not None, "the table runs this only after login"
        user = self.user
        return Account(lambda: self.backend.inbox(user), self._send)

    def _select(self, cmd: Command) -> ImapState:
        if len(cmd.args) != 1:
            raise BadCommand(f"{cmd.name} takes one mailbox name")
        inbox = is_inbox(cmd.args[0])
        # RFC 3501 6.3.1: a SELECT closes the mailbox selected before, even if it fails.
        self._selection = None
        if not inbox:
            self._tagged(cmd.tag, R_NO_MAILBOX)
            return ImapState.AUTHENTICATED
        assert self.user is not None
        read_only = cmd.name == "EXAMINE"
        self._selection = Selection(
            self.backend.inbox(self.user), read_only=read_only, send=self._send
        )
        self._selection.announce()
        self._ok(cmd, "", b"[READ-ONLY]" if read_only else b"[READ-WRITE]")
        return ImapState.SELECTED

    def _append(self, cmd: Command) -> None:
        args = list(cmd.args)
        if len(args) < 2 or not isinstance(args[-1], bytes):
            raise BadCommand("APPEND takes a mailbox, optional flags and date, and a literal")
        if not is_inbox(args[0]):
            self._tagged(cmd.tag, R_TRYCREATE)
            return
        flags = parse_flags(args[1]) if isinstance(args[1], list) else frozenset[str]()
        assert self.user is not None
        self.backend.inbox(self.user).append(args[-1], flags)
        if self._selection is not None:
            self._selection.sync(expunges=True)
        self._ok(cmd)

    def _idle(self, cmd: Command) -> ImapState:
        if cmd.args:
            raise BadCommand("IDLE takes no arguments")
        self._continued = cmd.tag
        self._send_line(R_CONTINUE_IDLE)
        if self._selection is not None:
            self._selection.sync(expunges=True)
        return ImapState.IDLE

    def _idle_done(self, cmd: Command) -> ImapState:
        line = cmd.args[0]
        assert isinstance(line, bytes)
        if line.strip().upper() != b"DONE":
            self._tagged(cmd.tag, R_IDLE_NOT_DONE)
        else:
            self._ok(cmd, "IDLE terminated")
        # RFC 2177: back to the state IDLE was sent in, told apart by the open mailbox.
        return ImapState.AUTHENTICATED if self._selection is None else ImapState.SELECTED

    # -- selected (RFC 3501 section 6.4) --------------------------------------------------

    def _selected(self) -> Selection:
        assert self._selection is not None, "the table runs this only in SELECTED"
        return self._selection

    def _fetch(self, cmd: Command) -> None:
        self._job = self._selected().fetch(cmd)
        self._work()

    def _close(self, cmd: Command) -> ImapState:
        self._selected().close(cmd)
        return ImapState.AUTHENTICATED


# What :meth:`ImapSession.quick` lets run inline: commands that answer from the session
# alone (RFC 3501 sections 6.1.1, 6.1.3), and on the selected mailbox those that read it
# (sections 6.4.4, 6.4.5, 6.4.8).
_QUICK_ANY = frozenset({b"CAPABILITY", b"LOGOUT"})
_QUICK_SELECTED = _QUICK_ANY | {b"FETCH", b"SEARCH", b"UID FETCH", b"UID SEARCH"}
# Quick only when the backend can open the INBOX from what it knows (RFC 3501 6.3.1-2).
_OPENING = frozenset({b"SELECT", b"EXAMINE"})
_OPEN_FROM = frozenset({ImapState.AUTHENTICATED, ImapState.SELECTED})

_NA = ImapState.NOT_AUTHENTICATED
_AI = ImapState.AUTHENTICATING
_AU = ImapState.AUTHENTICATED
_SE = ImapState.SELECTED
_ID = ImapState.IDLE
_LO = ImapState.LOGOUT
S = ImapSession


def _on_account(command: Callable[[Account, Command], None]) -> Handler:
    """A handler for a command about the user's mailboxes: the account answers it."""

    def handler(session: ImapSession, cmd: Command) -> None:
        command(session._account(), cmd)

    return handler


def _on_mailbox(command: Callable[[Selection, Command], None]) -> Handler:
    """A handler for a command on the selected mailbox: the mailbox answers it."""

    def handler(session: ImapSession, cmd: Command) -> None:
        command(session._selected(), cmd)

    return handler


# command -> (handler, where it leads: None stays, a set lists every outcome)
_ANY: dict[str, tuple[Handler, frozenset[ImapState] | None]] = {
    "CAPABILITY": (S._capability, None),
    "NOOP": (S._noop, None),
    "LOGOUT": (S._logout, frozenset({_LO})),
}
_NOT_AUTHENTICATED: dict[str, tuple[Handler, frozenset[ImapState] | None]] = {
    "STARTTLS": (S._starttls, None),
    "LOGIN": (S._login, frozenset({_NA, _AU})),
    "AUTHENTICATE": (S._authenticate, frozenset({_NA, _AI, _AU})),
}
_AUTHENTICATED: dict[str, tuple[Handler, frozenset[ImapState] | None]] = {
    "SELECT": (S._select, frozenset({_AU, _SE})),
    "EXAMINE": (S._select, frozenset({_AU, _SE})),
    "CREATE": (_on_account(Account.create), None),
    "DELETE": (_on_account(Account.create), None),
    "RENAME": (_on_account(Account.create), None),
    "SUBSCRIBE": (_on_account(Account.subscribe), None),
    "UNSUBSCRIBE": (_on_account(Account.subscribe), None),
    "LIST": (_on_account(Account.list), None),
    "LSUB": (_on_account(Account.list), None),
    "NAMESPACE": (_on_account(Account.namespace), None),
    "STATUS": (_on_account(Account.status), None),
    "APPEND": (S._append, None),
    "IDLE": (S._idle, frozenset({_ID})),
}


_SELECTED: dict[str, tuple[Handler, frozenset[ImapState] | None]] = {
    "CHECK": (_on_mailbox(Selection.check), None),
    "CLOSE": (S._close, frozenset({_AU})),
    "UNSELECT": (S._close, frozenset({_AU})),  # RFC 3691
    "EXPUNGE": (_on_mailbox(Selection.expunge), None),
    "SEARCH": (_on_mailbox(Selection.search), None),
    "FETCH": (S._fetch, None),  # answered in batches: see ImapSession.pending
    "STORE": (_on_mailbox(Selection.store), None),
    "COPY": (_on_mailbox(Selection.copy), None),
    "UID SEARCH": (_on_mailbox(Selection.search), None),
    "UID FETCH": (S._fetch, None),
    "UID STORE": (_on_mailbox(Selection.store), None),
    "UID COPY": (_on_mailbox(Selection.copy), None),
}


def _rows(
    states: Sequence[ImapState], commands: dict[str, tuple[Handler, frozenset[ImapState] | None]]
) -> dict[tuple[ImapState, str], Transition[Handler, ImapState]]:
    return {
        (state, name): Transition(handler, to if to is not None else frozenset({state}))
        for state in states
        for name, (handler, to) in commands.items()
    }


#: Every legal (state, command) pair, its handler and the states it can lead to; anything
#: else is answered BAD. In AUTHENTICATING and IDLE the only input is a continuation line.
TRANSITIONS: dict[tuple[ImapState, str], Transition[Handler, ImapState]] = {
    **_rows([_NA, _AU, _SE], _ANY),
    **_rows([_NA], _NOT_AUTHENTICATED),
    **_rows([_AU, _SE], _AUTHENTICATED),
    **_rows([_SE], _SELECTED),
    (_AI, CONTINUATION): Transition(S._sasl_response, frozenset({_NA, _AU})),
    (_ID, CONTINUATION): Transition(S._idle_done, frozenset({_AU, _SE})),
}

#: Every command name a client can send (for exhaustive state/command tests).
COMMANDS = frozenset(name for _, name in TRANSITIONS) - {CONTINUATION}
