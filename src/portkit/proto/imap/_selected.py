"""The selected mailbox (RFC 3501 section 6.4): the session's view of it, kept in step.

The client numbers messages 1..n as the session last told it; messages the store gained
or lost meanwhile reach the client only through untagged EXISTS/EXPUNGE/FETCH responses
(RFC 3501 section 5.2), sent by :meth:`Selection.sync` when the protocol allows.
"""

from __future__ import annotations

import email.message
from collections.abc import Callable, Sequence

from portkit._errors import PortkitError
from portkit.proto.imap._grammar import (
    SYSTEM_FLAGS,
    BadCommand,
    Token,
    in_ranges,
    parse_sequence_set,
)
from portkit.proto.imap._mailbox import ImapMailbox, View
from portkit.proto.imap._render import (
    FetchAtt,
    bodystructure,
    envelope,
    flag_list,
    internaldate,
    parse_message,
    section_bytes,
)
from portkit.proto.imap._search import Predicate, SearchContext

__all__ = ["Selection"]


class Selection:
    """INBOX as selected by one session.

    Args:
        inbox: the store's mailbox.
        read_only: selected with EXAMINE: no flag changes, no expunges, no \\Recent taken.
        send: writes response bytes (CRLF included) to the client.
    """

    def __init__(
        self, inbox: ImapMailbox, *, read_only: bool, send: Callable[[bytes], None]
    ) -> None:
        self.inbox = inbox
        self.read_only = read_only
        self._send = send
        snap = inbox.snapshot(claim_recent=not read_only)
        self.uidvalidity, self.uidnext = snap.uidvalidity, snap.uidnext
        self.view = [View.of(m) for m in snap.messages]

    def _untagged(self, line: bytes) -> None:
        self._send(b"* " + line + b"\r\n")

    def announce(self) -> None:
        """The untagged responses of a successful SELECT or EXAMINE (RFC 3501 6.3.1)."""
        flags = b"(" + " ".join(SYSTEM_FLAGS).encode() + b")"
        self._untagged(b"FLAGS " + flags)
        self._untagged(b"%d EXISTS" % len(self.view))
        self._untagged(b"%d RECENT" % sum(v.recent for v in self.view))
        unseen = next((i + 1 for i, v in enumerate(self.view) if "\\Seen" not in v.flags), 0)
        if unseen:
            self._untagged(b"OK [UNSEEN %d] first unseen message" % unseen)
        permanent = b"()" if self.read_only else flags
        self._untagged(b"OK [PERMANENTFLAGS " + permanent + b"] flags stored permanently")
        self._untagged(b"OK [UIDVALIDITY %d] uids valid" % self.uidvalidity)
        self._untagged(b"OK [UIDNEXT %d] predicted next uid" % self.uidnext)

    def largest_uid(self) -> int:
        return self.view[-1].uid if self.view else 0

    def sync(self, *, expunges: bool) -> None:
        """Tell the client what changed in the mailbox since it last heard (RFC 3501 5.2).

        Expunges are held back where RFC 3501 section 7.4.1 forbids them (during FETCH,
        STORE and SEARCH, which number messages by sequence).
        """
        snap = self.inbox.snapshot(claim_recent=not self.read_only)
        current = {m.uid: m for m in snap.messages}
        if expunges:
            for i in range(len(self.view) - 1, -1, -1):
                if self.view[i].uid not in current:
                    del self.view[i]
                    self._untagged(b"%d EXPUNGE" % (i + 1))
        for i, view in enumerate(self.view):
            record = current.get(view.uid)
            if record is not None and record.flags != view.flags:
                view.flags = record.flags
                self._untagged(b"%d FETCH (FLAGS %s)" % (i + 1, flag_list(view.flags, view.recent)))
        top = self.largest_uid()
        fresh = [View.of(m) for m in snap.messages if m.uid > top]
        if fresh:
            self.view.extend(fresh)
            self._untagged(b"%d EXISTS" % len(self.view))
            self._untagged(b"%d RECENT" % sum(v.recent for v in self.view))
        self.uidnext = max(self.uidnext, snap.uidnext)

    def expunge_deleted(self, *, report: bool) -> None:
        """Remove the messages flagged \\Deleted; ``report`` sends EXPUNGE for each."""
        self.sync(expunges=report)
        doomed = [i for i, v in enumerate(self.view) if "\\Deleted" in v.flags]
        self.inbox.expunge([self.view[i].uid for i in doomed])
        for i in reversed(doomed):  # descending: each EXPUNGE renumbers what follows
            del self.view[i]
            if report:
                self._untagged(b"%d EXPUNGE" % (i + 1))

    def messages(self, set_text: Token, *, by_uid: bool) -> list[int]:
        """Indexes into the view for a sequence set or UID set."""
        if not isinstance(set_text, str):
            raise BadCommand("sequence set must be an atom")
        if by_uid:
            largest = self.largest_uid()
            ranges = parse_sequence_set(set_text, largest)
            # RFC 3501 6.4.8: "n:*" always includes the highest UID in the mailbox.
            if self.view and any(
                part.endswith("*") or part.startswith("*") for part in set_text.split(",")
            ):
                ranges.append((largest, largest))
            return [i for i, v in enumerate(self.view) if in_ranges(v.uid, ranges)]
        ranges = parse_sequence_set(set_text, len(self.view))
        if any(b > len(self.view) for _, b in ranges):
            raise BadCommand("sequence number out of range")
        return [i for i in range(len(self.view)) if in_ranges(i + 1, ranges)]

    def fetch(self, index: int, atts: Sequence[FetchAtt]) -> None:
        """Send the FETCH response for one message; raise PortkitError if it is gone."""
        view = self.view[index]
        raw: bytes | None = None
        parsed: email.message.Message | None = None

        def message() -> bytes:
            nonlocal raw
            if raw is None:
                raw = self.inbox.read(view.uid)
            return raw

        def tree() -> email.message.Message:
            nonlocal parsed
            if parsed is None:
                parsed = parse_message(message())
            return parsed

        items: list[bytes] = []
        set_seen = False
        for att in atts:
            if att.name == "FLAGS":
                continue  # added last, after a possible \Seen
            if att.name == "UID":
                items.append(b"UID %d" % view.uid)
            elif att.name == "RFC822.SIZE":
                items.append(b"RFC822.SIZE %d" % view.size)
            elif att.name == "INTERNALDATE":
                items.append(b"INTERNALDATE " + internaldate(view.internaldate))
            elif att.name == "ENVELOPE":
                items.append(b"ENVELOPE " + envelope(tree()))
            elif att.name == "BODYSTRUCTURE":
                items.append(b"BODYSTRUCTURE " + bodystructure(tree()))
            elif att.name == "BODY":
                items.append(b"BODY " + bodystructure(tree(), extensible=False))
            else:
                data = section_bytes(message(), att.section)
                if att.partial is not None:
                    start, length = att.partial
                    data = data[start : start + length]
                items.append(att.label.encode() + b" {%d}\r\n" % len(data) + data)
                if not att.peek and not self.read_only and "\\Seen" not in view.flags:
                    set_seen = True
        if set_seen:
            # RFC 3501 6.4.5: BODY[...] (not PEEK) sets \Seen, and FLAGS is then returned.
            view.flags = view.flags | {"\\Seen"}
            self.inbox.set_flags(view.uid, view.flags)
        if set_seen or any(a.name == "FLAGS" for a in atts):
            items.append(b"FLAGS " + flag_list(view.flags, view.recent))
        self._send(b"* %d FETCH (" % (index + 1) + b" ".join(items) + b")\r\n")

    def store(
        self,
        indexes: Sequence[int],
        mode: str,
        flags: frozenset[str],
        *,
        silent: bool,
        by_uid: bool,
    ) -> bool:
        """Change flags (``mode`` FLAGS, +FLAGS or -FLAGS); False if some message was gone."""
        complete = True
        for i in indexes:
            view = self.view[i]
            if mode == "FLAGS":
                new = flags
            elif mode == "+FLAGS":
                new = view.flags | flags
            else:
                new = view.flags - flags
            try:
                if new != view.flags:
                    self.inbox.set_flags(view.uid, new)
            except PortkitError:
                complete = False
                continue
            view.flags = new
            if not silent:
                uid = b"UID %d " % view.uid if by_uid else b""
                self._untagged(b"%d FETCH (%sFLAGS %s)" % (i + 1, uid, flag_list(new, view.recent)))
        return complete

    def copy(self, indexes: Sequence[int]) -> bool:
        """Append copies of messages to INBOX; False (nothing copied) if one was gone."""
        try:
            copies = [(self.inbox.read(self.view[i].uid), self.view[i].flags) for i in indexes]
        except PortkitError:
            return False
        for data, flags in copies:
            self.inbox.append(data, flags)
        return True

    def search(self, keys: Sequence[Predicate], *, by_uid: bool) -> list[int]:
        """Sequence numbers (or UIDs) of the messages every key matches."""
        found: list[int] = []
        for i, view in enumerate(self.view):
            ctx = SearchContext(i, view, self.inbox.read)
            try:
                if all(k(ctx) for k in keys):
                    found.append(view.uid if by_uid else i + 1)
            except PortkitError:
                continue  # expunged meanwhile: cannot match
        return found
