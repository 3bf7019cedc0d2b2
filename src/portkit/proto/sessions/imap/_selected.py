"""The selected mailbox and the commands on it (RFC 3501 section 6.4).

The client numbers messages 1..n as the session last told it; messages the store gained
or lost meanwhile reach the client only through untagged EXISTS/EXPUNGE/FETCH responses
(RFC 3501 section 5.2), sent by :meth:`Selection.sync` when the protocol allows.
"""

from __future__ import annotations

import dataclasses
import email.message
from collections.abc import Callable, Iterator, Sequence

from portkit._errors import PortkitError
from portkit.proto.sessions.imap._grammar import (
    SYSTEM_FLAGS,
    BadCommand,
    Command,
    Token,
    astring,
    in_ranges,
    is_inbox,
    parse_flags,
    parse_sequence_set,
    parse_store_item,
)
from portkit.proto.sessions.imap._mailbox import ImapMailbox, MessageRecord
from portkit.proto.sessions.imap._render import (
    FetchAtt,
    bodystructure,
    envelope,
    flag_list,
    internaldate,
    parse_fetch_items,
    parse_message,
    section_bytes,
)
from portkit.proto.sessions.imap._search import SearchContext, compile_keys

__all__ = ["R_EXPUNGEISSUED", "R_READ_ONLY", "R_TRYCREATE", "Selection"]

# Response codes: RFC 3501 section 7.1, RFC 5530.
R_TRYCREATE = b"NO [TRYCREATE] no such mailbox (only INBOX is served)"
R_READ_ONLY = b"NO [READ-ONLY] mailbox is read-only"
R_EXPUNGEISSUED = b"NO [EXPUNGEISSUED] some messages were expunged by another session"
R_BADCHARSET = b"NO [BADCHARSET (US-ASCII UTF-8)] unsupported charset"


class Selection:
    """INBOX as selected by one session.

    :attr:`view` is what this session has told the client about each message (RFC 3501
    section 2.3.1.2): sequence numbers and flags change for the client only when the
    session reports the change, so it keeps its own list beside the store's, sharing the
    store's records until it reports a change of flags.

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
        self.view: list[MessageRecord] = list(snap.messages)

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

    def _set_view_flags(self, index: int, flags: frozenset[str]) -> MessageRecord:
        """Record that the client is told message ``index`` now has ``flags``."""
        view = self.view[index] = dataclasses.replace(self.view[index], flags=flags)
        return view

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
                self._set_view_flags(i, record.flags)
                self._untagged(
                    b"%d FETCH (FLAGS %s)" % (i + 1, flag_list(record.flags, view.recent))
                )
        top = self.largest_uid()
        fresh = [m for m in snap.messages if m.uid > top]
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

    def _fetch_one(self, index: int, atts: Sequence[FetchAtt]) -> None:
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

        items: list[bytes | tuple[bytes, bytes]] = []
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
                # a literal (RFC 3501 section 4.3): its octets are joined once, below
                items.append((att.label.encode() + b" {%d}\r\n" % len(data), data))
                if not att.peek and not self.read_only and "\\Seen" not in view.flags:
                    set_seen = True
        if set_seen:
            # RFC 3501 6.4.5: BODY[...] (not PEEK) sets \Seen, and FLAGS is then returned.
            view = self._set_view_flags(index, view.flags | {"\\Seen"})
            self.inbox.set_flags(view.uid, view.flags)
        if set_seen or any(a.name == "FLAGS" for a in atts):
            items.append(b"FLAGS " + flag_list(view.flags, view.recent))
        parts = [b"* %d FETCH (" % (index + 1)]
        for item in items:
            if len(parts) > 1:
                parts.append(b" ")
            if isinstance(item, tuple):
                parts.extend(item)
            else:
                parts.append(item)
        parts.append(b")\r\n")
        self._send(b"".join(parts))

    # -- the commands of the selected state (RFC 3501 section 6.4) ----------------------------

    def _ok(self, cmd: Command) -> None:
        self._send(cmd.tag.encode("ascii") + b" OK %s completed\r\n" % cmd.name.encode())

    def _no(self, cmd: Command, line: bytes) -> None:
        self._send(cmd.tag.encode("ascii") + b" " + line + b"\r\n")

    def _finish(self, cmd: Command, *, complete: bool = True) -> None:
        """Tag a FETCH/STORE/SEARCH; the UID forms may report expunges (RFC 3501 7.4.1)."""
        if cmd.name.startswith("UID"):
            self.sync(expunges=True)
        if complete:
            self._ok(cmd)
        else:
            self._no(cmd, R_EXPUNGEISSUED)

    def check(self, cmd: Command) -> None:
        self.sync(expunges=True)
        self._ok(cmd)

    def close(self, cmd: Command) -> None:
        """CLOSE expunges silently (unless read-only), UNSELECT does not (RFC 3501 6.4.2)."""
        if cmd.name == "CLOSE" and not self.read_only:
            self.expunge_deleted(report=False)
        self._ok(cmd)

    def expunge(self, cmd: Command) -> None:
        if self.read_only:
            self._no(cmd, R_READ_ONLY)
            return
        self.expunge_deleted(report=True)
        self.sync(expunges=True)
        self._ok(cmd)

    def fetch(self, cmd: Command) -> Iterator[None]:
        """FETCH answered one message per step, so output goes out in bounded batches.

        The arguments are checked at once (a syntax error raises before the first step).
        """
        by_uid = cmd.name.startswith("UID")
        if len(cmd.args) != 2:
            raise BadCommand("FETCH takes a sequence set and data items")
        atts = parse_fetch_items(cmd.args[1], by_uid=by_uid)
        indexes = self.messages(cmd.args[0], by_uid=by_uid)
        return self._fetch_steps(cmd, atts, indexes)

    def _fetch_steps(
        self, cmd: Command, atts: Sequence[FetchAtt], indexes: Sequence[int]
    ) -> Iterator[None]:
        complete = True
        for i in indexes:
            try:
                self._fetch_one(i, atts)
            except PortkitError:
                complete = False
            yield
        self._finish(cmd, complete=complete)

    def store(self, cmd: Command) -> None:
        if len(cmd.args) != 3:
            raise BadCommand("STORE takes a sequence set, an item name and flags")
        mode, silent = parse_store_item(cmd.args[1])
        raw_flags = cmd.args[2]
        flags = parse_flags(raw_flags if isinstance(raw_flags, list) else [raw_flags])
        if self.read_only:
            self._no(cmd, R_READ_ONLY)
            return
        by_uid = cmd.name.startswith("UID")
        complete = True
        for i in self.messages(cmd.args[0], by_uid=by_uid):
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
            self._set_view_flags(i, new)
            if not silent:
                uid = b"UID %d " % view.uid if by_uid else b""
                self._untagged(b"%d FETCH (%sFLAGS %s)" % (i + 1, uid, flag_list(new, view.recent)))
        self._finish(cmd, complete=complete)

    def copy(self, cmd: Command) -> None:
        """Copies go to INBOX, the only mailbox; nothing is copied if one message is gone."""
        if len(cmd.args) != 2:
            raise BadCommand("COPY takes a sequence set and a mailbox")
        indexes = self.messages(cmd.args[0], by_uid=cmd.name.startswith("UID"))
        if not is_inbox(cmd.args[1]):
            self._no(cmd, R_TRYCREATE)
            return
        try:
            copies = [(self.inbox.read(self.view[i].uid), self.view[i].flags) for i in indexes]
        except PortkitError:
            self._no(cmd, R_EXPUNGEISSUED)
            return
        for data, flags in copies:
            self.inbox.append(data, flags)
        self._ok(cmd)

    def search(self, cmd: Command) -> None:
        args = list(cmd.args)
        if len(args) >= 2 and isinstance(args[0], str) and args[0].upper() == "CHARSET":
            if astring(args[1], "charset").upper() not in ("US-ASCII", "UTF-8"):
                self._no(cmd, R_BADCHARSET)
                return
            args = args[2:]
        keys = compile_keys(args, messages=len(self.view), largest_uid=self.largest_uid())
        by_uid = cmd.name.startswith("UID")
        found: list[int] = []
        for i, view in enumerate(self.view):
            ctx = SearchContext(i, view, self.inbox.read)
            try:
                if all(k(ctx) for k in keys):
                    found.append(view.uid if by_uid else i + 1)
            except PortkitError:
                continue  # expunged meanwhile: cannot match
        self._untagged(b"SEARCH" + b"".join(b" %d" % n for n in found))
        self._finish(cmd)
