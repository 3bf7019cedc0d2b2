"""The IMAP4rev1 session state machine, sans-io: bytes in, events out."""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portkit._errors import LocalProtocolError, PortkitError, RemoteProtocolError
from portkit.proto.sessions.imap import (
    COMMANDS,
    CONTINUATION,
    MAX_LINE,
    MAX_MIME_DEPTH,
    OUTPUT_BATCH,
    TRANSITIONS,
    Close,
    Event,
    ImapSession,
    ImapState,
    LoginFailed,
    LoginSucceeded,
    MessageRecord,
    Send,
    Snapshot,
    StartTls,
    bodystructure,
    parse_message,
    parse_sequence_set,
)

PLAIN = (
    b"From: Carol <carol@x.test>\r\nTo: alice@example.test\r\nSubject: hello\r\n\r\nbody text\r\n"
)
NESTED = (
    b"From: a@x.test\r\nSubject: fwd\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
    b"--b1\r\nContent-Type: text/plain\r\n\r\nsee below\r\n"
    b"--b1\r\nContent-Type: message/rfc822\r\n\r\n"
    b"From: inner@y.test\r\nSubject: inner\r\n\r\ninner body\r\n"
    b"--b1--\r\n"
)


class Gone(PortkitError):
    pass


class MemoryMailbox:
    def __init__(self) -> None:
        self.messages: dict[int, tuple[bytes, frozenset[str]]] = {
            1: (PLAIN, frozenset()),
            2: (NESTED, frozenset({"\\Seen"})),
        }
        self.uidnext = 3
        self.recent = {1, 2}

    def snapshot(self, *, claim_recent: bool) -> Snapshot:
        records = [
            MessageRecord(
                uid=uid,
                flags=flags,
                size=len(data),
                internaldate=86400.0 * 20000,
                recent=uid in self.recent,
            )
            for uid, (data, flags) in sorted(self.messages.items())
        ]
        if claim_recent:
            self.recent.clear()
        return Snapshot(uidvalidity=42, uidnext=self.uidnext, messages=records)

    def read(self, uid: int) -> bytes:
        if uid not in self.messages:
            raise Gone(f"uid {uid} gone")
        return self.messages[uid][0]

    def set_flags(self, uid: int, flags: frozenset[str]) -> None:
        if uid not in self.messages:
            raise Gone(f"uid {uid} gone")
        self.messages[uid] = (self.messages[uid][0], flags)

    def expunge(self, uids: Sequence[int]) -> None:
        for uid in uids:
            self.messages.pop(uid, None)

    def append(self, data: bytes, flags: frozenset[str]) -> None:
        self.messages[self.uidnext] = (data, flags)
        self.uidnext += 1


class MemoryBackend:
    def __init__(self) -> None:
        self.box = MemoryMailbox()
        self.ready = False  # what inbox_ready answers

    def authenticate(self, user: str, password: str) -> bool:
        return (user, password) == ("alice", "p w")

    def inbox(self, user: str) -> MemoryMailbox:
        return self.box

    def inbox_ready(self, user: str) -> bool:
        return self.ready


def sent(events: Sequence[Event]) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, Send))


def feed(session: ImapSession, script: bytes, *, one_byte: bool) -> list[Event]:
    if not one_byte:
        return session.receive(script)
    events: list[Event] = []
    for i in range(len(script)):
        events += session.receive(script[i : i + 1])
    return events


SCRIPT = (
    b'a1 LOGIN alice "p w"\r\n'
    b"a2 SELECT INBOX\r\n"
    b"a3 FETCH 1:* (UID FLAGS RFC822.SIZE)\r\n"
    b"a4 FETCH 1 BODY[]\r\n"
    b"a5 UID FETCH 2 (BODYSTRUCTURE BODY.PEEK[2.HEADER] BODY.PEEK[1]<0.3>)\r\n"
    b"a6 SEARCH SUBJECT {5}\r\nhello\r\n"
    b"a7 STORE 2 +FLAGS (\\Deleted)\r\n"
    b"a8 EXPUNGE\r\n"
    b"a9 UID SEARCH ALL\r\n"
    b"b1 LOGOUT\r\n"
)


@pytest.mark.parametrize("one_byte", [False, True])
def test_conversation(one_byte: bool) -> None:
    session = ImapSession(MemoryBackend())
    events = feed(session, SCRIPT, one_byte=one_byte)
    text = sent(events)
    assert b"a1 OK [CAPABILITY " in text
    assert b"* 2 EXISTS\r\n* 2 RECENT\r\n" in text
    assert b"* OK [UIDVALIDITY 42]" in text
    assert b"a2 OK [READ-WRITE]" in text
    assert b"* 1 FETCH (UID 1 RFC822.SIZE %d FLAGS (\\Recent))" % len(PLAIN) in text
    # BODY[] sets \Seen and reports it (RFC 3501 6.4.5)
    assert b"* 1 FETCH (BODY[] {%d}\r\n%s FLAGS (\\Seen \\Recent))" % (len(PLAIN), PLAIN) in text
    assert (
        b'* 2 FETCH (UID 2 BODYSTRUCTURE (("TEXT" "PLAIN" NIL NIL NIL "7BIT" 9 1 NIL NIL NIL NIL)'
        b'("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 48 (NIL "inner" ((NIL NIL "inner" "y.test"))'
    ) in text  # no display name is NIL; the envelope of the encapsulated message follows
    assert b'("TEXT" "PLAIN" NIL NIL NIL "7BIT" 10 1 NIL NIL NIL NIL) 4 NIL NIL NIL NIL)' in text
    assert b"BODY[2.HEADER] {38}\r\nFrom: inner@y.test\r\nSubject: inner\r\n\r\n" in text
    assert b"BODY[1]<0> {3}\r\nsee" in text
    assert b"+ ready for literal data\r\n" in text
    assert b"* SEARCH 1\r\na6 OK" in text
    assert b"* 2 EXPUNGE\r\na8 OK" in text
    assert b"* SEARCH 1\r\na9 OK" in text
    assert text.endswith(
        b"* BYE portkit IMAP4rev1 server logging out\r\nb1 OK LOGOUT completed\r\n"
    )
    assert isinstance(events[-1], Close)
    assert session.state is ImapState.LOGOUT


def test_same_output_whole_and_byte_at_a_time() -> None:
    assert sent(feed(ImapSession(MemoryBackend()), SCRIPT, one_byte=False)) == sent(
        feed(ImapSession(MemoryBackend()), SCRIPT, one_byte=True)
    )


def test_literal_over_limit_refused_before_reading() -> None:
    session = ImapSession(MemoryBackend(), max_literal=100)
    out = sent(session.receive(b"a LOGIN {101}\r\n"))
    assert out == b"a BAD [TOOBIG] literal of 101 octets is larger than the limit of 100\r\n"
    assert session.state is ImapState.NOT_AUTHENTICATED
    # a non-synchronizing one before login: refused and the connection closed (RFC 7888 4)
    events = session.receive(b"b LOGIN {500+}\r\n" + b"x" * 500 + b"\r\nc NOOP\r\n")
    assert sent(events) == (
        b"b BAD [TOOBIG] literal of 500 octets is larger than the limit of 100\r\n"
        b"* BYE [TOOBIG] non-synchronizing literal too large before login\r\n"
    )
    assert isinstance(events[-1], Close)
    # after login it is sent anyway: dropped without buffering, then back in step
    session = ImapSession(MemoryBackend(), max_literal=100)
    session.receive(b'a LOGIN alice "p w"\r\n')
    out = sent(session.receive(b"b NOOP {500+}\r\n" + b"x" * 500 + b"\r\nc NOOP\r\n"))
    assert out == (
        b"b BAD [TOOBIG] literal of 500 octets is larger than the limit of 100\r\n"
        b"c OK NOOP completed\r\n"
    )
    assert session.buffered() == 0
    # the rest of the refused command is dropped with it, more unasked literals included
    hidden = b"\r\nx LOGOUT\r\n".ljust(200, b"y")  # literal octets are never commands
    script = b"d NOOP {200+}\r\n" + hidden + b" {3+}\r\nzzz rest\r\ne NOOP\r\n"
    for one_byte in (False, True):
        out = sent(feed(session, script, one_byte=one_byte))
        assert out == (
            b"d BAD [TOOBIG] literal of 200 octets is larger than the limit of 100\r\n"
            b"e OK NOOP completed\r\n"
        )


@pytest.mark.parametrize("one_byte", [False, True])
def test_authenticate_plain_continuation(one_byte: bool) -> None:
    session = ImapSession(MemoryBackend())
    token = base64.b64encode(b"\0alice\0p w")
    events = feed(session, b"a AUTHENTICATE PLAIN\r\n" + token + b"\r\n", one_byte=one_byte)
    assert sent(events).startswith(b"+ \r\na OK [CAPABILITY")
    assert LoginSucceeded(user="alice") in events
    events = feed(
        ImapSession(MemoryBackend()), b"a AUTHENTICATE PLAIN AGFsaWNlAHg=\r\n", one_byte=one_byte
    )
    assert LoginFailed(user="alice") in events
    assert b"a NO [AUTHENTICATIONFAILED]" in sent(events)


def test_starttls_drops_pipelined_plaintext() -> None:
    session = ImapSession(MemoryBackend(), tls_available=True)
    events = session.receive(b'a STARTTLS\r\nb LOGIN alice "p w"\r\n')
    assert sent(events) == b"a OK begin tls negotiation now\r\n"
    assert isinstance(events[-1], StartTls)
    session.tls_started()
    assert b"STARTTLS" not in sent(session.receive(b"c CAPABILITY\r\n"))
    assert session.state is ImapState.NOT_AUTHENTICATED


def test_logindisabled_without_tls() -> None:
    session = ImapSession(MemoryBackend(), tls_available=True, plaintext_login=False)
    text = sent(session.receive(b'a CAPABILITY\r\nb LOGIN alice "p w"\r\n'))
    assert b"LOGINDISABLED" in text
    assert b"AUTH=PLAIN" not in text
    assert b"b NO [PRIVACYREQUIRED]" in text


def test_idle_reports_changes_and_done() -> None:
    backend = MemoryBackend()
    session = ImapSession(backend)
    session.receive(b'a LOGIN alice "p w"\r\nb SELECT INBOX\r\n')
    assert sent(session.receive(b"c IDLE\r\n")) == b"+ idling\r\n"
    assert session.poll() == []
    backend.box.append(b"Subject: new\r\n\r\nx\r\n", frozenset())
    backend.box.expunge([1])
    assert sent(session.poll()) == b"* 1 EXPUNGE\r\n* 2 EXISTS\r\n* 1 RECENT\r\n"
    assert sent(session.receive(b"DONE\r\n")) == b"c OK IDLE terminated\r\n"
    assert session.state is ImapState.SELECTED


def test_fetch_of_message_expunged_elsewhere_is_no() -> None:
    backend = MemoryBackend()
    session = ImapSession(backend)
    session.receive(b'a LOGIN alice "p w"\r\nb SELECT INBOX\r\n')
    backend.box.expunge([2])
    text = sent(session.receive(b"c FETCH 2 BODY.PEEK[]\r\n"))
    assert text == b"c NO [EXPUNGEISSUED] some messages were expunged by another session\r\n"
    assert sent(session.receive(b"d NOOP\r\n")) == b"* 2 EXPUNGE\r\nd OK NOOP completed\r\n"


@given(st.text(alphabet="0123456789:*,", max_size=30), st.integers(0, 2**32))
def test_sequence_set_parses_or_raises_ours(text: str, largest: int) -> None:
    try:
        ranges = parse_sequence_set(text, largest)
    except RemoteProtocolError:
        return
    assert all(0 <= a <= b for a, b in ranges)


SESSION_STATES = [ImapState.NOT_AUTHENTICATED, ImapState.AUTHENTICATED, ImapState.SELECTED]
#: AUTHENTICATING and IDLE wait for a continuation line of the command with this tag.
WAITING_STATES = {ImapState.AUTHENTICATING: b"w1", ImapState.IDLE: b"w2"}


def session_in(state: ImapState) -> ImapSession:
    session = ImapSession(MemoryBackend(), tls_available=True)
    if state is ImapState.AUTHENTICATING:
        session.receive(b"w1 AUTHENTICATE PLAIN\r\n")
    if state in (ImapState.AUTHENTICATED, ImapState.SELECTED, ImapState.IDLE):
        session.receive(b'a LOGIN alice "p w"\r\n')
    if state in (ImapState.SELECTED, ImapState.IDLE):
        session.receive(b"b SELECT INBOX\r\n")
    if state is ImapState.IDLE:
        session.receive(b"w2 IDLE\r\n")
    assert session.state is state
    return session


#: Arguments with which each command succeeds in the states that allow it.
GOOD_ARGS = {
    "LOGIN": b' alice "p w"',
    "AUTHENTICATE": b" PLAIN",
    "SELECT": b" INBOX",
    "EXAMINE": b" INBOX",
    "SUBSCRIBE": b" INBOX",
    "UNSUBSCRIBE": b" INBOX",
    "LIST": b' "" *',
    "LSUB": b' "" *',
    "STATUS": b" INBOX (MESSAGES)",
    "APPEND": b" INBOX {3+}\r\nx\r\n",
    "SEARCH": b" ALL",
    "FETCH": b" 1 FLAGS",
    "STORE": b" 1 +FLAGS (\\Seen)",
    "COPY": b" 1 INBOX",
}


def command_line(command: str, *, good_args: bool) -> bytes:
    args = GOOD_ARGS.get(command.removeprefix("UID "), b"") if good_args else b""
    return b"t2 " + command.encode() + args + b"\r\n"


@pytest.mark.parametrize("good_args", [False, True], ids=["bare", "with-args"])
@pytest.mark.parametrize("state", SESSION_STATES, ids=lambda s: s.name)
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_state_command_pair(state: ImapState, command: str, good_args: bool) -> None:
    """Over the wire: a pair in the table answers and lands where the table says; any
    other pair is BAD naming the command and the state, and changes nothing."""
    session = session_in(state)
    out = sent(session.receive(command_line(command, good_args=good_args)))
    if (state, command) in TRANSITIONS:
        assert re.search(rb"(^|\n)(t2 (OK|NO|BAD)|\+ )", out), out
        assert b"is not allowed in state" not in out
        assert session.state in TRANSITIONS[(state, command)].to
        if good_args and command not in ("CREATE", "DELETE", "RENAME"):  # only INBOX
            assert re.search(rb"(^|\n)(t2 OK|\+ )", out), out
    else:
        expected = f"t2 BAD command {command} is not allowed in state {state.value}\r\n"
        assert out == expected.encode()
        assert session.state is state


@pytest.mark.parametrize("state", list(WAITING_STATES), ids=lambda s: s.name)
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_waiting_states_take_any_line_as_the_continuation(state: ImapState, command: str) -> None:
    """In AUTHENTICATING and IDLE a command line is not a command: it answers (and ends)
    the command waiting there, under that command's tag."""
    session = session_in(state)
    out = sent(session.receive(command_line(command, good_args=False)))
    assert out.startswith(WAITING_STATES[state] + b" BAD "), out
    assert session.state in TRANSITIONS[(state, CONTINUATION)].to
    assert session.state is not state


def test_continuations_lead_where_the_table_says() -> None:
    session = session_in(ImapState.AUTHENTICATING)
    token = base64.b64encode(b"\0alice\0p w")
    assert sent(session.receive(token + b"\r\n")).startswith(b"w1 OK [CAPABILITY")
    assert session.state is ImapState.AUTHENTICATED
    session = session_in(ImapState.AUTHENTICATING)
    assert sent(session.receive(b"*\r\n")) == b"w1 BAD authentication cancelled\r\n"
    assert session.state is ImapState.NOT_AUTHENTICATED
    session = session_in(ImapState.IDLE)
    assert sent(session.receive(b"done\r\n")) == b"w2 OK IDLE terminated\r\n"
    assert session.state is ImapState.SELECTED


def test_idle_without_a_mailbox_returns_to_authenticated() -> None:
    session = ImapSession(MemoryBackend())
    assert sent(session.receive(b'a LOGIN alice "p w"\r\nb IDLE\r\n')).endswith(b"+ idling\r\n")
    assert sent(session.receive(b"DONE\r\n")) == b"b OK IDLE terminated\r\n"
    assert session.state is ImapState.AUTHENTICATED


def test_the_table_lists_every_command_in_every_state_it_allows() -> None:
    allowed = {state for state, _ in TRANSITIONS}
    assert allowed == set(ImapState) - {ImapState.LOGOUT}
    for (state, name), transition in TRANSITIONS.items():
        assert transition.to, (state, name)
        assert ImapState.LOGOUT not in transition.to or name == "LOGOUT"


def test_failed_select_leaves_no_mailbox_selected() -> None:
    """RFC 3501 6.3.1: the selected mailbox is closed first, even when SELECT fails."""
    session = session_in(ImapState.SELECTED)
    assert sent(session.receive(b"c SELECT Other\r\n")).startswith(b"c NO [NONEXISTENT]")
    assert session.state is ImapState.AUTHENTICATED
    out = sent(session.receive(b"d SEARCH ALL\r\n"))
    assert out == b"d BAD command SEARCH is not allowed in state authenticated\r\n"
    # a malformed mailbox argument is BAD and leaves the selection as it was
    session = session_in(ImapState.SELECTED)
    assert sent(session.receive(b"c SELECT (x)\r\n")).startswith(b"c BAD mailbox must be")
    assert session.state is ImapState.SELECTED
    assert (
        sent(session.receive(b"d SEARCH ALL\r\n")) == b"* SEARCH 1 2\r\nd OK SEARCH completed\r\n"
    )


@pytest.mark.parametrize("one_byte", [False, True])
def test_end_of_input_answers_what_was_asked_then_closes(one_byte: bool) -> None:
    session = ImapSession(MemoryBackend())
    events = feed(session, b'a LOGIN alice "p w"\r\nb SELECT INBOX\r\nc NOO', one_byte=one_byte)
    assert b"b OK [READ-WRITE]" in sent(events)
    events = session.receive(b"")  # the incomplete NOOP is dropped, the session ends
    assert events == [Close()]
    assert session.state is ImapState.LOGOUT
    with pytest.raises(LocalProtocolError, match="3 octets received after the end of input"):
        session.receive(b"d\r\n")


def test_end_of_input_during_a_long_fetch_finishes_it() -> None:
    backend = MemoryBackend()
    big = b"Subject: big\r\n\r\n" + b"x" * 400_000 + b"\r\n"
    backend.box.messages = {uid: (big, frozenset()) for uid in range(1, 7)}
    session = ImapSession(backend)
    session.receive(b'a LOGIN alice "p w"\r\nb SELECT INBOX\r\n')
    text = sent(session.receive(b"c FETCH 1:* BODY.PEEK[]\r\n"))
    assert session.pending()
    events = session.receive(b"")
    while session.pending():
        events += session.resume()
    text += sent(events)
    assert text.count(b"BODY[] {%d}\r\n" % len(big)) == 6
    assert text.endswith(b"c OK FETCH completed\r\n")
    assert events[-1] == Close()
    # a connection lost mid-answer abandons it: nothing is pending any more
    session = ImapSession(backend)
    session.receive(b'a LOGIN alice "p w"\r\nb SELECT INBOX\r\nc FETCH 1:* BODY.PEEK[]\r\n')
    assert session.pending()
    session.connection_lost()
    assert not session.pending()
    assert session.resume() == []


ARGS = st.sampled_from(
    [
        b"1",
        b"1:*",
        b"*",
        b"(",
        b")",
        b"()",
        b'"x"',
        b'"\\"',
        b"{3}",
        b"{3+}",
        b"INBOX",
        b"BODY[",
        b"BODY[1.2.MIME]<0.5>",
        b"(FLAGS UID)",
        b"\\Seen",
        b"NIL",
        b"UID",
        b"OR",
        b"NOT",
        b"SUBJECT",
        b"ALL",
        b"BODY.PEEK[HEADER.FIELDS (A B)]",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(COMMANDS)), st.lists(ARGS, max_size=6))
def test_random_arguments_never_raise(command: str, args: list[bytes]) -> None:
    session = session_in(ImapState.SELECTED)
    line = b"t " + command.encode() + b" " + b" ".join(args) + b"\r\n"
    events = session.receive(line)
    assert all(
        isinstance(e, Send | StartTls | LoginFailed | LoginSucceeded | Close) for e in events
    )


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    for state in [*SESSION_STATES, *WAITING_STATES]:
        session = session_in(state)
        session.receive(data + b"\r\n")
        while session.pending():
            session.resume()
        if not session.closed:
            assert session.receive(b"")[-1] == Close()  # end of input ends any state
        assert session.state is ImapState.LOGOUT


def test_large_fetch_answers_in_bounded_batches() -> None:
    backend = MemoryBackend()
    big = b"Subject: big\r\n\r\n" + b"x" * 400_000 + b"\r\n"
    backend.box.messages = {uid: (big, frozenset()) for uid in range(1, 7)}
    backend.box.uidnext = 7
    session = ImapSession(backend)
    session.receive(b'a LOGIN alice "p w"\r\nb SELECT INBOX\r\n')
    batches = [sent(session.receive(b"c FETCH 1:* BODY.PEEK[]\r\nd NOOP\r\n"))]
    while session.pending():
        batches.append(sent(session.resume()))
    assert len(batches) >= 3
    assert all(len(b) < OUTPUT_BATCH + 2 * len(big) for b in batches)
    text = b"".join(batches)
    assert text.count(b"BODY[] {%d}\r\n" % len(big)) == 6
    # the pipelined NOOP is answered after the FETCH has finished, not in between
    assert text.index(b"c OK FETCH completed") < text.index(b"d OK NOOP completed")
    assert text.endswith(b"d OK NOOP completed\r\n")


@pytest.mark.parametrize("one_byte", [False, True])
def test_chained_literals_are_one_command_capped_before_login(one_byte: bool) -> None:
    session = ImapSession(MemoryBackend(), max_command_unauthenticated=1000)
    first = b"a NOSUCHCMD {600}\r\n" + b"x" * 600
    out = sent(feed(session, first, one_byte=one_byte))
    assert session.buffered() >= 600  # the command so far, its literal included
    out += sent(feed(session, b" {600}\r\n", one_byte=one_byte))
    # the first literal fits, the second would make the command too big: never asked for
    assert out == (
        b"+ ready for literal data\r\n"
        b"a BAD [TOOBIG] command would be larger than the limit of 1000 octets\r\n"
    )
    assert session.buffered() == 0
    # nothing of the refused command lingers: the next line is a command of its own
    assert sent(session.receive(b"b NOOP\r\n")) == b"b OK NOOP completed\r\n"


def test_command_cap_is_larger_after_login() -> None:
    session = ImapSession(
        MemoryBackend(), max_literal=500, max_command=1000, max_command_unauthenticated=200
    )
    assert sent(session.receive(b"a LOGIN {300}\r\n")).startswith(b"a BAD [TOOBIG] command")
    assert b"a OK" in sent(session.receive(b'a LOGIN alice "p w"\r\nb1 SELECT INBOX\r\n'))
    out = sent(session.receive(b"b SEARCH SUBJECT {300}\r\n" + b"x" * 300 + b"\r\n"))
    assert out.startswith(b"+ ready for literal data\r\n* SEARCH")
    # the cap after login is never below one literal plus a line
    assert session.max_command == 500 + MAX_LINE


def test_nesting_in_commands_is_bounded() -> None:
    session = ImapSession(MemoryBackend())
    session.receive(b'a LOGIN alice "p w"\r\nb SELECT INBOX\r\n')
    out = sent(session.receive(b"c SEARCH " + b"(" * 5000 + b"ALL" + b")" * 5000 + b"\r\n"))
    assert out.startswith(b"c BAD lists nested more than")
    out = sent(session.receive(b"d SEARCH " + b"NOT " * 5000 + b"ALL\r\n"))
    assert out.startswith(b"d BAD search keys nested more than")
    assert sent(session.receive(b"e SEARCH NOT NOT ALL\r\n")).startswith(b"* SEARCH 1 2")


def test_deep_mime_is_flat_past_the_bound() -> None:
    body = b"Content-Type: text/plain\r\n\r\ninnermost\r\n"
    for level in range(MAX_MIME_DEPTH + 50, 0, -1):
        body = (
            b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (level, level)
            + body
            + b"--b%d--\r\n" % level
        )
    structure = bodystructure(parse_message(b"Subject: deep\r\n" + body))
    assert structure.count(b'"MIXED"') == MAX_MIME_DEPTH
    assert structure.count(b'"TEXT" "PLAIN"') == 1


def _line_for(state: ImapState, command: str, good_args: bool) -> bytes:
    if state in WAITING_STATES:  # the continuation lines that end the wait cleanly
        if state is ImapState.IDLE:
            return b"DONE\r\n"
        return base64.b64encode(b"\0alice\0p w") + b"\r\n"
    return command_line(command, good_args=good_args)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(sorted(COMMANDS)), st.booleans()), max_size=25))
def test_random_conversations_move_only_as_the_table_says(
    steps: list[tuple[str, bool]],
) -> None:
    """Every step of a random conversation lands in a state its table row lists (or, for
    a pair the table lacks, stays put; too many BAD before login log out); fed one byte at
    a time, the same bytes come out."""
    session, script = ImapSession(MemoryBackend()), b""
    for command, good_args in steps:
        if session.closed:
            break
        before = session.state
        line = _line_for(before, command, good_args)
        script += line
        out = sent(session.receive(line))
        while session.pending():
            session.resume()
        if b"* BYE too many invalid commands" in out:  # the one move outside the table
            assert before in (ImapState.NOT_AUTHENTICATED, ImapState.AUTHENTICATING)
            assert session.state is ImapState.LOGOUT
            break
        name = CONTINUATION if before in WAITING_STATES else command
        row = TRANSITIONS.get((before, name))
        assert session.state in (row.to if row else {before}), (before, command)
    whole = sent(feed(ImapSession(MemoryBackend()), script, one_byte=False))
    assert whole == sent(feed(ImapSession(MemoryBackend()), script, one_byte=True))


def test_too_many_invalid_commands_before_login_end_the_session() -> None:
    session = ImapSession(MemoryBackend(), max_bad_commands=2)
    script = (
        b"a XYZZY\r\nb CAPABILITY\r\nc SELECT INBOX\r\n"
        + b"d " * MAX_LINE  # a line too long is one more
        + b"\r\ne NOOP\r\n"
    )
    out = session.receive(script)
    text = sent(out)
    assert b"a BAD unknown command XYZZY\r\n" in text
    assert b"b OK" in text  # valid: not counted
    assert b"c BAD command SELECT is not allowed in state not authenticated\r\n" in text
    assert text.endswith(b"* BAD line too long\r\n* BYE too many invalid commands\r\n")
    assert isinstance(out[-1], Close)
    assert session.state is ImapState.LOGOUT


def test_a_literal_continuation_and_a_failed_login_are_not_invalid_commands() -> None:
    session = ImapSession(MemoryBackend(), max_bad_commands=0)
    text = sent(session.receive(b'a LOGIN {5}\r\nalice wrong\r\nb LOGIN alice "p w"\r\n'))
    assert b"+ " in text
    assert b"a NO [AUTHENTICATIONFAILED]" in text
    assert b"b OK" in text
    assert b"BYE" not in text
    assert sent(session.receive(b"c XYZZY\r\n" * 3)) == b"c BAD unknown command XYZZY\r\n" * 3


@pytest.mark.parametrize(
    ("state", "data", "quick"),
    [
        (ImapState.SELECTED, b"c FETCH 1:* (BODY.PEEK[])\r\n", True),
        (ImapState.SELECTED, b"c uid fetch 1 FLAGS\r\nd SEARCH ALL\r\n", True),
        (ImapState.SELECTED, b"c FETCH 1 FLAGS\r\nd STORE 1 +FLAGS (\\Seen)\r\n", False),
        (ImapState.SELECTED, b"c SEARCH SUBJECT {5}\r\n", False),  # a literal follows
        (ImapState.SELECTED, b"c EXPUNGE\r\n", False),
        (ImapState.SELECTED, b"c APPEND INBOX {3+}\r\nx\r\n", False),
        (ImapState.SELECTED, b"c SELECT INBOX\r\n", False),  # scans the mailbox
        (ImapState.SELECTED, b"", False),
        (ImapState.SELECTED, b"c UID STORE 1 +FLAGS (\\Seen)\r\n", False),  # renames
        (ImapState.SELECTED, b"c NOOP\r\n", False),  # may take \Recent: renames
        (ImapState.SELECTED, b"c FETCH 1 FLAGS\r\nd LOGOUT\r\n", True),
        (ImapState.AUTHENTICATED, b"c FETCH 1 FLAGS\r\n", False),
        (ImapState.AUTHENTICATED, b"c CAPABILITY\r\nd LOGOUT\r\n", True),
        (ImapState.NOT_AUTHENTICATED, b"a CAPABILITY\r\n", True),
        (ImapState.NOT_AUTHENTICATED, b"a LOGOUT\r\n", True),
        (ImapState.NOT_AUTHENTICATED, b'a LOGIN alice "p w"\r\n', False),  # scrypt
        (ImapState.NOT_AUTHENTICATED, b"a UID\r\n", False),
        (ImapState.AUTHENTICATING, b"a LOGOUT\r\n", False),  # a SASL response
        (ImapState.IDLE, b"DONE\r\n", False),
    ],
)
def test_quick_input_is_only_what_needs_no_store_or_reads_the_selected_mailbox(
    state: ImapState, data: bytes, quick: bool
) -> None:
    assert session_in(state).quick(data) is quick


@pytest.mark.parametrize("state", [ImapState.AUTHENTICATED, ImapState.SELECTED])
@pytest.mark.parametrize("command", [b"SELECT", b"EXAMINE"])
def test_opening_the_inbox_is_quick_only_while_the_backend_knows_it(
    state: ImapState, command: bytes
) -> None:
    session = session_in(state)
    assert isinstance(session.backend, MemoryBackend)
    line = b"c " + command + b" INBOX\r\n"
    assert session.quick(line) is False  # a listing to make, or messages to move
    session.backend.ready = True
    assert session.quick(line) is True
    assert session.quick(line + b"d FETCH 1 FLAGS\r\n") is (state is ImapState.SELECTED)
    assert session.quick(b"c SELECT {5}\r\n") is False  # a literal follows
    # and it answers the same either way
    assert b"c OK [READ-" in sent(session.receive(line))


def test_opening_is_never_quick_before_login() -> None:
    session = session_in(ImapState.NOT_AUTHENTICATED)
    assert isinstance(session.backend, MemoryBackend)
    session.backend.ready = True
    assert session.quick(b"c SELECT INBOX\r\n") is False


def test_quick_waits_for_a_whole_line() -> None:
    session = session_in(ImapState.SELECTED)
    session.receive(b"c LOG")  # held in the buffer: the next input completes it
    assert session.quick(b"OUT\r\n") is False
    assert session_in(ImapState.SELECTED).quick(None) is False  # nothing in progress
