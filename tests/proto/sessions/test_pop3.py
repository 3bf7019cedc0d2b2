"""The POP3 session state machine, sans-io: bytes in, events out."""

from __future__ import annotations

import base64
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portkit._errors import LocalProtocolError, PortkitError
from portkit.proto.sessions.pop3 import (
    COMMANDS,
    CONTINUATION,
    TRANSITIONS,
    Close,
    Event,
    LoginFailed,
    LoginSucceeded,
    Pop3Session,
    Pop3State,
    Send,
    StartTls,
    byte_stuff,
)

MESSAGES = [
    b"Subject: one\r\n\r\nfirst body\r\n.dot line\r\n",
    b"Subject: two\r\nX: y\r\n\r\nl1\r\nl2\r\nl3\r\n",
]


class Locked(PortkitError):
    pass


class MemoryMaildrop:
    def __init__(self, backend: MemoryBackend) -> None:
        self.backend = backend

    def listing(self) -> Sequence[tuple[str, int]]:
        return [(f"uid{i}", len(m)) for i, m in enumerate(self.backend.messages)]

    def read(self, index: int) -> bytes:
        return self.backend.messages[index]

    def commit(self, deleted: Sequence[int]) -> None:
        for index in sorted(deleted, reverse=True):
            del self.backend.messages[index]

    def release(self) -> None:
        self.backend.locked = False


class MemoryBackend:
    def __init__(self) -> None:
        self.messages = list(MESSAGES)
        self.locked = False

    def authenticate(self, user: str, password: str) -> bool:
        return (user, password) == ("alice", "secret pass")

    def open_maildrop(self, user: str) -> MemoryMaildrop:
        if self.locked:
            raise Locked("locked")
        self.locked = True
        return MemoryMaildrop(self)


def sent(events: Sequence[Event]) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, Send))


def run(script: bytes, *, one_byte: bool, **kwargs: bool) -> tuple[list[Event], Pop3Session]:
    session = Pop3Session(MemoryBackend(), **kwargs)
    events: list[Event] = []
    if one_byte:
        for i in range(len(script)):
            events += session.receive(script[i : i + 1])
    else:
        events += session.receive(script)
    return events, session


SCRIPT = (
    b"CAPA\r\nUSER alice\r\nPASS secret pass\r\nSTAT\r\nLIST\r\nLIST 2\r\nUIDL\r\n"
    b"TOP 2 1\r\nRETR 1\r\nDELE 1\r\nRETR 1\r\nSTAT\r\nRSET\r\nDELE 2\r\nNOOP\r\nQUIT\r\n"
)


@pytest.mark.parametrize("one_byte", [False, True])
def test_full_conversation(one_byte: bool) -> None:
    events, session = run(SCRIPT, one_byte=one_byte)
    out = sent(events).split(b"\r\n")
    assert out[0] == b"+OK capability list follows"
    assert b"USER" in out
    assert b"SASL PLAIN" in out
    assert b"TOP" in out
    text = sent(events)
    assert (
        b"+OK maildrop locked and ready (2 messages, %d octets)" % sum(map(len, MESSAGES)) in text
    )
    assert b"+OK 2 %d\r\n" % sum(map(len, MESSAGES)) in text
    assert b"+OK 2 %d\r\n" % len(MESSAGES[1]) in text
    assert b"1 uid0\r\n2 uid1\r\n.\r\n" in text
    assert b"+OK top of message follows\r\nSubject: two\r\nX: y\r\n\r\nl1\r\n.\r\n" in text
    assert b"first body\r\n..dot line\r\n.\r\n" in text  # byte-stuffed
    assert b"-ERR message already deleted" in text
    assert text.endswith(b"+OK bye, changes saved\r\n")
    assert isinstance(events[-1], Close)
    assert session.state is Pop3State.CLOSED
    assert session.backend.messages == [MESSAGES[0]]  # type: ignore[attr-defined]
    assert not session.backend.locked  # type: ignore[attr-defined]


@pytest.mark.parametrize("one_byte", [False, True])
def test_sasl_plain_with_continuation(one_byte: bool) -> None:
    token = base64.b64encode(b"\0alice\0secret pass")
    events, session = run(b"AUTH PLAIN\r\n" + token + b"\r\n", one_byte=one_byte)
    assert sent(events).startswith(b"+ \r\n+OK maildrop locked")
    assert LoginSucceeded(user="alice") in events
    assert session.state is Pop3State.TRANSACTION


def test_failed_logins_are_events_and_err() -> None:
    events, session = run(b"USER alice\r\nPASS nope\r\nAUTH PLAIN Kg==\r\n", one_byte=False)
    assert LoginFailed(user="alice") in events
    assert sent(events).count(b"-ERR") == 2
    assert session.state is Pop3State.AUTHORIZATION


def test_second_session_gets_in_use() -> None:
    backend = MemoryBackend()
    first, second = Pop3Session(backend), Pop3Session(backend)
    first.receive(b"USER alice\r\nPASS secret pass\r\n")
    out = sent(second.receive(b"USER alice\r\nPASS secret pass\r\n"))
    assert out.endswith(b"-ERR [IN-USE] maildrop already locked by another session\r\n")
    first.connection_lost()
    assert not backend.locked


def test_stls_discards_pipelined_plaintext() -> None:
    session = Pop3Session(MemoryBackend(), tls_available=True)
    events = session.receive(b"STLS\r\nUSER alice\r\nPASS secret pass\r\n")
    assert sent(events) == b"+OK begin tls negotiation\r\n"
    assert isinstance(events[-1], StartTls)
    session.tls_started()
    assert sent(session.receive(b"STLS\r\n")) == b"-ERR tls already active\r\n"
    assert session.state is Pop3State.AUTHORIZATION


def test_plaintext_login_refused_without_tls_when_configured() -> None:
    events, _ = run(b"USER alice\r\nCAPA\r\n", one_byte=False, plaintext_login=False)
    text = sent(events)
    assert text.startswith(b"-ERR [AUTH] plaintext login needs tls")
    assert b"USER\r\n" not in text


def test_overlong_line_is_one_err_and_recovers() -> None:
    events, session = run(b"X" * 10_000 + b"\r\nNOOP\r\nUSER alice\r\n", one_byte=False)
    assert sent(events) == (
        b"-ERR line too long\r\n"
        b"-ERR command NOOP is not allowed in state authorization\r\n"
        b"+OK send PASS\r\n"
    )
    assert session.buffered() == 0


def test_byte_stuff_normalises_line_ends() -> None:
    assert byte_stuff(b".a\nb\n") == b"..a\r\nb\r\n.\r\n"
    assert byte_stuff(b"no newline") == b"no newline\r\n.\r\n"
    assert byte_stuff(b"") == b".\r\n"


SESSION_STATES = [s for s in Pop3State if s is not Pop3State.AUTHORIZATION_SASL]


def session_in(state: Pop3State) -> Pop3Session:
    session = Pop3Session(MemoryBackend(), tls_available=True)
    if state is Pop3State.AUTHORIZATION_USER:
        session.receive(b"USER alice\r\n")
    elif state is Pop3State.AUTHORIZATION_SASL:
        session.receive(b"AUTH PLAIN\r\n")
    elif state is Pop3State.TRANSACTION:
        session.receive(b"USER alice\r\nPASS secret pass\r\n")
    elif state is Pop3State.CLOSED:
        session.receive(b"QUIT\r\n")
    assert session.state is state
    return session


#: Arguments with which each command succeeds in the states that allow it.
GOOD_ARGS = {"USER": b" alice", "PASS": b" secret pass", "RETR": b" 1", "DELE": b" 1"}
GOOD_ARGS |= {"TOP": b" 1 0", "LIST": b" 1", "UIDL": b" 2", "AUTH": b" PLAIN"}


@pytest.mark.parametrize("good_args", [False, True], ids=["bare", "with-args"])
@pytest.mark.parametrize("state", SESSION_STATES, ids=lambda s: s.name)
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_state_command_pair(state: Pop3State, command: str, good_args: bool) -> None:
    """Over the wire: a pair in the table answers and lands where the table says; any
    other known command is -ERR naming the command and the state."""
    session = session_in(state)
    line = command.encode() + (GOOD_ARGS.get(command, b"") if good_args else b"") + b"\r\n"
    out = sent(session.receive(line))
    if state is Pop3State.CLOSED:
        assert out == b""  # nothing is read after QUIT
    elif (state, command) in TRANSITIONS:
        assert out.startswith((b"+OK", b"-ERR", b"+ ")), out
        assert b"is not allowed in state" not in out
        assert session.state in TRANSITIONS[(state, command)].to
        if good_args:
            assert out.startswith((b"+OK", b"+ ")), out
    elif command == "APOP":
        assert out == b"-ERR APOP not supported: passwords are stored hashed, use AUTH PLAIN\r\n"
    else:
        expected = f"-ERR command {command} is not allowed in state {state.value}\r\n"
        assert out == expected.encode()
        # PASS must follow USER directly; otherwise a refusal changes nothing
        after = Pop3State.AUTHORIZATION if state is Pop3State.AUTHORIZATION_USER else state
        assert session.state is after


def test_sasl_response_leads_where_the_table_says() -> None:
    for response, reply, state in [
        (base64.b64encode(b"\0alice\0secret pass"), b"+OK maildrop locked", Pop3State.TRANSACTION),
        (b"*", b"-ERR sasl authentication cancelled", Pop3State.AUTHORIZATION),
        (b"STAT", b"-ERR malformed sasl response", Pop3State.AUTHORIZATION),
    ]:
        session = session_in(Pop3State.AUTHORIZATION_SASL)
        assert sent(session.receive(response + b"\r\n")).startswith(reply)
        assert session.state is state
        assert state in TRANSITIONS[(Pop3State.AUTHORIZATION_SASL, CONTINUATION)].to


def test_unknown_command_is_err() -> None:
    session = session_in(Pop3State.TRANSACTION)
    assert sent(session.receive(b"XYZZY 1\r\n")) == b"-ERR unknown command\r\n"
    assert session.state is Pop3State.TRANSACTION


@pytest.mark.parametrize("one_byte", [False, True])
def test_end_of_input_releases_the_lock_without_update(one_byte: bool) -> None:
    _, session = run(b"USER alice\r\nPASS secret pass\r\nDELE 1\r\nNO", one_byte=one_byte)
    assert session.backend.locked  # type: ignore[attr-defined]
    assert session.receive(b"") == [Close()]
    assert session.state is Pop3State.CLOSED
    assert not session.backend.locked  # type: ignore[attr-defined]
    assert session.backend.messages == MESSAGES  # type: ignore[attr-defined]
    with pytest.raises(LocalProtocolError, match="after the end of input"):
        session.receive(b"QUIT\r\n")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    for state in Pop3State:
        session = session_in(state)
        events = session.receive(data) if data else []
        assert all(
            isinstance(e, Send | StartTls | LoginFailed | LoginSucceeded | Close) for e in events
        )


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                b"STAT",
                b"LIST",
                b"LIST 1",
                b"UIDL 2",
                b"RETR 2",
                b"TOP 1 0",
                b"DELE 1",
                b"RSET",
                b"NOOP",
                b"LIST 9",
                b"TOP x",
                b"RETR",
                b"CAPA",
            ]
        ),
        max_size=20,
    )
)
def test_whole_vs_byte_at_a_time(commands: list[bytes]) -> None:
    script = b"USER alice\r\nPASS secret pass\r\n" + b"".join(c + b"\r\n" for c in commands)
    whole, _ = run(script, one_byte=False)
    single, _ = run(script, one_byte=True)
    assert sent(whole) == sent(single)


def test_password_keeps_its_spaces() -> None:
    class SpaceBackend(MemoryBackend):
        def authenticate(self, user: str, password: str) -> bool:
            return password == " two  spaces "

    session = Pop3Session(SpaceBackend())
    out = sent(session.receive(b"USER alice\r\nPASS  two  spaces \r\n"))
    assert out.endswith(b"(2 messages, %d octets)\r\n" % sum(map(len, MESSAGES)))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(sorted(COMMANDS)), st.booleans()), max_size=25))
def test_random_conversations_move_only_as_the_table_says(
    steps: list[tuple[str, bool]],
) -> None:
    """Every step lands in a state its table row lists; a refused command stays put (or,
    after USER, starts the login over; too many before login end the session); one byte at
    a time, the same bytes come out."""
    session, script = Pop3Session(MemoryBackend()), b""
    for command, good_args in steps:
        if session.state is Pop3State.CLOSED:
            break
        before = session.state
        if before is Pop3State.AUTHORIZATION_SASL:
            name, line = CONTINUATION, base64.b64encode(b"\0alice\0secret pass") + b"\r\n"
        else:
            name = command
            line = command.encode() + (GOOD_ARGS.get(command, b"") if good_args else b"")
            line += b"\r\n"
        script += line
        if b"too many invalid commands" in sent(session.receive(line)):
            # the one move outside the table: too many refusals before login
            assert before is not Pop3State.TRANSACTION
            assert session.closed
            break
        row = TRANSITIONS.get((before, name))
        refused = Pop3State.AUTHORIZATION if before is Pop3State.AUTHORIZATION_USER else before
        assert session.state in (row.to if row else {refused}), (before, command)
    whole, _ = run(script, one_byte=False)
    single, _ = run(script, one_byte=True)
    assert sent(whole) == sent(single)


def test_too_many_invalid_commands_before_login_end_the_session() -> None:
    session = Pop3Session(MemoryBackend(), max_bad_commands=2)
    out = session.receive(b"XYZZY\r\nCAPA\r\nSTAT\r\nAPOP alice x\r\nCAPA\r\n")
    text = sent(out)
    # CAPA is a valid command: it neither counts nor resets the count.
    assert text.startswith(b"-ERR unknown command\r\n+OK capability list follows\r\n")
    assert text.endswith(
        b"-ERR command STAT is not allowed in state authorization\r\n"
        b"-ERR APOP not supported: passwords are stored hashed, use AUTH PLAIN\r\n"
        b"-ERR too many invalid commands, closing\r\n"
    )
    assert isinstance(out[-1], Close)
    assert session.closed  # the CAPA after it is never read


def test_invalid_commands_after_login_do_not_count() -> None:
    session = Pop3Session(MemoryBackend(), max_bad_commands=0)
    out = sent(session.receive(b"USER alice\r\nPASS secret pass\r\n" + b"XYZZY\r\n" * 5))
    assert out.endswith(b"-ERR unknown command\r\n" * 5)
    assert session.state is Pop3State.TRANSACTION


@pytest.mark.parametrize(
    ("script", "data", "quick"),
    [
        (b"USER alice\r\nPASS secret pass\r\n", b"RETR 1\r\n", True),
        (
            b"USER alice\r\nPASS secret pass\r\n",
            b"STAT\r\nLIST\r\nuidl\r\nTOP 1 0\r\nDELE 2\r\n",
            True,
        ),
        (b"USER alice\r\nPASS secret pass\r\n", b"RETR 1\r\nQUIT\r\n", False),  # QUIT deletes
        (b"USER alice\r\nPASS secret pass\r\n", b"", True),  # the end: nothing is committed
        (b"USER alice\r\n", b"PASS secret pass\r\n", False),  # a password check
        (b"", b"STAT\r\n", False),
    ],
)
def test_quick_input_is_the_transaction_commands_that_change_nothing(
    script: bytes, data: bytes, quick: bool
) -> None:
    _, session = run(script, one_byte=False)
    assert session.quick(data) is quick


def test_quick_waits_for_a_whole_line() -> None:
    _, session = run(b"USER alice\r\nPASS secret pass\r\nRE", one_byte=False)
    assert session.quick(b"TR 1\r\n") is False


@pytest.mark.parametrize(
    ("line", "answer"),
    [
        (b"RETR \xc2\xb2\r\n", b"-ERR no such message\r\n"),  # U+00B2: a digit, not ASCII
        (b"TOP 1 \xc2\xb2\r\n", b"-ERR bad arguments\r\n"),
        (b"TOP 1\r\n", b"-ERR bad arguments\r\n"),
        (b"DELE 1 2\r\n", b"-ERR bad arguments\r\n"),
        (b"LIST \xd9\xa1\r\n", b"-ERR no such message\r\n"),  # ARABIC-INDIC DIGIT ONE
    ],
)
def test_message_numbers_are_ascii_digits(line: bytes, answer: bytes) -> None:
    session = session_in(Pop3State.TRANSACTION)
    assert sent(session.receive(line)) == answer
    assert session.state is Pop3State.TRANSACTION
