"""A logged-in user's mailboxes (RFC 3501 sections 6.3.3 to 6.3.10): INBOX is the only one.

The commands of the authenticated state that name mailboxes without selecting one: CREATE,
DELETE and RENAME (refused), SUBSCRIBE, LIST and LSUB, NAMESPACE, STATUS.
"""

from __future__ import annotations

from collections.abc import Callable

from portkit.proto.sessions.imap._grammar import BadCommand, Command, astring, is_inbox, list_match
from portkit.proto.sessions.imap._mailbox import ImapMailbox

__all__ = ["R_CANNOT", "R_NO_MAILBOX", "Account"]

# Response codes: RFC 3501 section 7.1, RFC 5530.
R_NO_MAILBOX = b"NO [NONEXISTENT] no such mailbox (only INBOX is served)"
R_CANNOT = b"NO [CANNOT] only INBOX is served"


class Account:
    """The mailboxes of one user.

    Args:
        inbox: opens the user's INBOX.
        send: writes response bytes (CRLF included) to the client.
    """

    def __init__(self, inbox: Callable[[], ImapMailbox], send: Callable[[bytes], None]) -> None:
        self.inbox = inbox
        self._send = send

    def _reply(self, cmd: Command, line: bytes) -> None:
        self._send(cmd.tag.encode("ascii") + b" " + line + b"\r\n")

    def _ok(self, cmd: Command) -> None:
        self._reply(cmd, b"OK %s completed" % cmd.name.encode())

    def _untagged(self, line: bytes) -> None:
        self._send(b"* " + line + b"\r\n")

    def create(self, cmd: Command) -> None:
        """CREATE, DELETE and RENAME: the one mailbox cannot be changed."""
        self._reply(cmd, R_CANNOT)

    def subscribe(self, cmd: Command) -> None:
        """SUBSCRIBE and UNSUBSCRIBE: accepted for INBOX, which is always listed."""
        if len(cmd.args) != 1:
            raise BadCommand(f"{cmd.name} takes one mailbox name")
        if is_inbox(cmd.args[0]):
            self._ok(cmd)
        else:
            self._reply(cmd, R_NO_MAILBOX)

    def list(self, cmd: Command) -> None:
        """LIST and LSUB (RFC 3501 6.3.8, 6.3.9)."""
        if len(cmd.args) != 2:
            raise BadCommand(f"{cmd.name} takes a reference and a mailbox pattern")
        reference = astring(cmd.args[0], "reference")
        pattern = astring(cmd.args[1], "pattern")
        if pattern == "" and cmd.name == "LIST":
            # RFC 3501 6.3.8: an empty pattern asks for the hierarchy delimiter.
            self._untagged(b'LIST (\\Noselect) "/" ""')
        elif list_match(reference + pattern, "INBOX"):
            self._untagged(cmd.name.encode() + b' (\\HasNoChildren) "/" INBOX')
        self._ok(cmd)

    def namespace(self, cmd: Command) -> None:
        self._untagged(b'NAMESPACE (("" "/")) NIL NIL')  # RFC 2342
        self._ok(cmd)

    def status(self, cmd: Command) -> None:
        """STATUS (RFC 3501 6.3.10): counts without selecting, so \\Recent is not taken."""
        if len(cmd.args) != 2 or not isinstance(cmd.args[1], list):
            raise BadCommand("STATUS takes a mailbox name and a list of items")
        if not is_inbox(cmd.args[0]):
            self._reply(cmd, R_NO_MAILBOX)
            return
        snap = self.inbox().snapshot(claim_recent=False)
        values = {
            "MESSAGES": len(snap.messages),
            "RECENT": sum(m.recent for m in snap.messages),
            "UIDNEXT": snap.uidnext,
            "UIDVALIDITY": snap.uidvalidity,
            "UNSEEN": sum("\\Seen" not in m.flags for m in snap.messages),
        }
        items = []
        for item in cmd.args[1]:
            name = astring(item, "status item").upper()
            if name not in values:
                raise BadCommand(f"unknown status item {name}")
            items.append(f"{name} {values[name]}")
        self._untagged(b'STATUS "INBOX" (' + " ".join(items).encode() + b")")
        self._ok(cmd)
