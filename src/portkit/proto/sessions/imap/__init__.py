"""IMAP4rev1 server session as a sans-io state machine (RFC 3501).

Bytes from the client go in through :meth:`ImapSession.receive`; out come events for the
I/O layer: :class:`Send`, :class:`StartTls`, :class:`LoginFailed`, :class:`LoginSucceeded`,
:class:`Close`. No sockets, no asyncio. One mailbox, ``INBOX``, is served; the data comes
from an :class:`ImapBackend`.

Where each part lives:

- ``_session``: the states, the transition table :data:`TRANSITIONS` and the handlers.
- ``_framing``: bytes to commands: lines, literals and the caps on both.
- ``_grammar``: tokens and argument syntax (RFC 3501 section 9).
- ``_account``: the user's mailboxes (LIST, STATUS, ...): INBOX only.
- ``_selected``: the selected mailbox as the client knows it, and the commands on it.
- ``_render``: FETCH items: BODYSTRUCTURE, ENVELOPE, section bodies.
- ``_search``: SEARCH keys as predicates.
- ``_mailbox``: what the session needs from the store.
"""

from __future__ import annotations

from portkit.proto.sessions._line import Close, Event, LoginFailed, LoginSucceeded, Send, StartTls
from portkit.proto.sessions.imap._framing import MAX_LINE
from portkit.proto.sessions.imap._grammar import MAX_NESTING, SYSTEM_FLAGS, parse_sequence_set
from portkit.proto.sessions.imap._mailbox import ImapBackend, ImapMailbox, MessageRecord, Snapshot
from portkit.proto.sessions.imap._render import (
    MAX_MIME_DEPTH,
    bodystructure,
    envelope,
    parse_message,
)
from portkit.proto.sessions.imap._session import (
    COMMANDS,
    CONTINUATION,
    MAX_COMMAND,
    MAX_COMMAND_UNAUTHENTICATED,
    MAX_LITERAL,
    OUTPUT_BATCH,
    TRANSITIONS,
    ImapSession,
    ImapState,
)

__all__ = [
    "COMMANDS",
    "CONTINUATION",
    "MAX_COMMAND",
    "MAX_COMMAND_UNAUTHENTICATED",
    "MAX_LINE",
    "MAX_LITERAL",
    "MAX_MIME_DEPTH",
    "MAX_NESTING",
    "OUTPUT_BATCH",
    "SYSTEM_FLAGS",
    "TRANSITIONS",
    "Close",
    "Event",
    "ImapBackend",
    "ImapMailbox",
    "ImapSession",
    "ImapState",
    "LoginFailed",
    "LoginSucceeded",
    "MessageRecord",
    "Send",
    "Snapshot",
    "StartTls",
    "bodystructure",
    "envelope",
    "parse_message",
    "parse_sequence_set",
]
