"""What an IMAP session needs from the mail store."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = ["ImapBackend", "ImapMailbox", "MessageRecord", "Snapshot"]


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageRecord:
    """One message as the store reports it."""

    uid: int
    flags: frozenset[str]
    size: int
    internaldate: float  # seconds since the epoch
    recent: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    """The mailbox at one instant: UID bookkeeping and its messages in UID order."""

    uidvalidity: int
    uidnext: int
    messages: Sequence[MessageRecord]


class ImapMailbox(Protocol):
    """The INBOX of one user."""

    def snapshot(self, *, claim_recent: bool) -> Snapshot:
        """The messages now; with ``claim_recent`` this session takes their \\Recent."""
        ...

    def read(self, uid: int) -> bytes:
        """The bytes of a message; raise :class:`~portkit.PortkitError` if it is gone."""
        ...

    def set_flags(self, uid: int, flags: frozenset[str]) -> None:
        """Replace the system flags of a message."""
        ...

    def expunge(self, uids: Sequence[int]) -> None:
        """Remove messages permanently."""
        ...

    def append(self, data: bytes, flags: frozenset[str]) -> None:
        """Add a message."""
        ...


class ImapBackend(Protocol):
    """Accounts and mailboxes for a session."""

    def authenticate(self, user: str, password: str) -> bool:
        """Whether the credentials are valid."""
        ...

    def inbox(self, user: str) -> ImapMailbox:
        """The user's INBOX."""
        ...

    def inbox_ready(self, user: str) -> bool:
        """Whether the user's INBOX can be opened now from what the store already knows
        (nothing to list, no message to move): then SELECT is quick work."""
        ...
