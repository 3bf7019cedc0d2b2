"""The POP3 and IMAP state machines' view of the Maildir store and the accounts."""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Sequence

from portkit.host.apps.mail._auth import LoginGuard, MailAccounts
from portkit.host.apps.mail._store import Maildir, MaildirEntry, MaildirStore, MessageGone
from portkit.proto.imap import MessageRecord, Snapshot

__all__ = ["ImapStoreMailbox", "MailBackend", "Pop3StoreMaildrop"]

# Directory mtimes are only as fine as the kernel's clock tick; trust an unchanged mtime
# only once it is older than this.
_STABLE_NS = 1_000_000_000


def _uidl(key: str) -> str:
    # RFC 1939 section 7: 1-70 characters in 0x21-0x7E. Maildir keys normally qualify.
    if 0 < len(key) <= 70 and all(0x21 <= ord(c) <= 0x7E for c in key):
        return key
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:40]


class Pop3StoreMaildrop:
    """A locked Maildir, fixed at the moment of login (RFC 1939 section 8)."""

    def __init__(self, box: Maildir) -> None:
        self._box = box
        self._lock = box.pop3_lock()
        self._lock.__enter__()  # raises MaildropLocked when another session holds it
        self._entries = box.scan()

    def listing(self) -> Sequence[tuple[str, int]]:
        return [(_uidl(e.key), e.size) for e in self._entries]

    def read(self, index: int) -> bytes:
        return self._box.read(self._entries[index])

    def commit(self, deleted: Sequence[int]) -> None:
        for index in deleted:
            self._box.delete(self._entries[index])

    def release(self) -> None:
        self._lock.__exit__(None, None, None)


class ImapStoreMailbox:
    """A user's Maildir as the IMAP INBOX."""

    def __init__(self, box: Maildir) -> None:
        self._box = box
        self._by_uid: dict[int, MaildirEntry] = {}
        self._cached: tuple[tuple[int, int], Snapshot] | None = None
        self._unclaimed = False

    def _stamp(self) -> tuple[int, int]:
        return (os.stat(self._box.new).st_mtime_ns, os.stat(self._box.cur).st_mtime_ns)

    def snapshot(self, *, claim_recent: bool) -> Snapshot:
        # Every arrival, flag change and removal renames or unlinks a file, which changes the
        # mtime of new/ or cur/. While both are unchanged (and older than the timestamp
        # granularity, so a change in the same tick cannot hide) the last scan still holds:
        # an IDLE client polling every second costs two stat() calls, not one per message.
        stamp = self._stamp()  # before scanning: a change during the scan moves it on
        cached = self._cached
        if (
            cached is not None
            and cached[0] == stamp
            and time.time_ns() - max(stamp) > _STABLE_NS
            and not (claim_recent and self._unclaimed)
        ):
            return cached[1]
        snap = self._scan(claim_recent=claim_recent)
        self._cached = (stamp, snap)
        return snap

    def _scan(self, *, claim_recent: bool) -> Snapshot:
        entries = self._box.scan()
        claimed: set[str] = set()
        if claim_recent:
            fresh = [e for e in entries if e.recent]
            if fresh:
                # Moving new/ -> cur/ is how a Maildir session takes \Recent: the next
                # session sees them in cur/, no longer recent (RFC 3501 section 2.3.2).
                moved = {m.key: m for m in self._box.mark_seen_by_session(fresh)}
                claimed = {k for k, m in moved.items() if not m.recent}
                entries = [moved.get(e.key, e) for e in entries]
        self._unclaimed = any(e.recent for e in entries)  # still in new/
        validity, uidnext, uids = self._box.uids(entries)
        self._by_uid = {uids[e.key]: e for e in entries if e.key in uids}
        records = [
            MessageRecord(
                uid=uid,
                flags=e.flags,
                size=e.size,
                internaldate=e.mtime,
                recent=e.recent or e.key in claimed,
            )
            for uid, e in sorted(self._by_uid.items())
        ]
        return Snapshot(uidvalidity=validity, uidnext=uidnext, messages=records)

    def _entry(self, uid: int) -> MaildirEntry:
        try:
            return self._by_uid[uid]
        except KeyError:
            raise MessageGone(f"message uid {uid} is no longer in the mailbox") from None

    def read(self, uid: int) -> bytes:
        return self._box.read(self._entry(uid))

    def set_flags(self, uid: int, flags: frozenset[str]) -> None:
        self._by_uid[uid] = self._box.set_flags(self._entry(uid), flags)

    def expunge(self, uids: Sequence[int]) -> None:
        for uid in uids:
            with contextlib.suppress(MessageGone):
                self._box.delete(self._entry(uid))
                del self._by_uid[uid]

    def append(self, data: bytes, flags: frozenset[str]) -> None:
        self._box.deliver(data, flags=flags)


class MailBackend:
    """Accounts + store for one connection; the guard decides which logins are checked.

    :meth:`authenticate` runs in a worker thread (scrypt is slow): it reserves the attempt
    with the guard first, so parallel connections cannot have more guesses checked than the
    lockout allows, and leaves the delay for the failure's answer in :attr:`delay`.
    """

    def __init__(
        self, store: MaildirStore, accounts: MailAccounts, guard: LoginGuard, source: str
    ) -> None:
        self.store = store
        self.accounts = accounts
        self.guard = guard
        self.source = source
        self.delay = 0.0  # seconds to wait before answering the last failed login

    def authenticate(self, user: str, password: str) -> bool:
        attempt = self.guard.attempt(self.source, user)
        if attempt is None:  # locked out, or its share of guesses is in flight already
            self.delay = self.guard.refused(self.source)
            return False
        ok = False
        try:
            ok = self.accounts.check(user, password)
        finally:
            self.delay = self.guard.finish(attempt, ok=ok)
        return ok

    def open_maildrop(self, user: str) -> Pop3StoreMaildrop:
        return Pop3StoreMaildrop(self.store.maildir(user.lower()))

    def inbox(self, user: str) -> ImapStoreMailbox:
        return ImapStoreMailbox(self.store.maildir(user.lower()))
