"""The POP3 and IMAP state machines' view of the Maildir store and the accounts."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Mapping, Sequence

from portkit.host.apps.mail._auth import LoginGuard, MailAccounts
from portkit.host.apps.mail._store import Maildir, MaildirEntry, MaildirStore, MessageGone
from portkit.proto.sessions.imap import MessageRecord, Snapshot

__all__ = ["ImapStoreMailbox", "MailBackend", "Pop3StoreMaildrop"]


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

    def snapshot(self, *, claim_recent: bool) -> Snapshot:
        listing = self._box.listing()
        entries = listing.entries
        if claim_recent and any(e.recent for e in entries):
            # Moving new/ -> cur/ is how a Maildir session takes \Recent: the next
            # session sees them in cur/, no longer recent (RFC 3501 section 2.3.2).
            moved = {m.key: m for m in self._box.mark_seen_by_session(entries)}
            claimed = frozenset(e.key for e in entries if e.recent and not moved[e.key].recent)
            entries = tuple(moved.get(e.key, e) for e in entries)
            snap, by_uid = _snapshot(entries, self._box.uids(entries), claimed, None)
        else:
            # Nothing of this session's own in it: every session of an unchanged
            # mailbox shares one snapshot, built once.
            uids = self._box.uids(entries)
            snap, by_uid = self._box.derived(
                (listing, uids), lambda last: _snapshot(entries, uids, frozenset(), last)
            )
        self._by_uid = dict(by_uid)  # this session's own: flag changes rename its files
        return snap

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


_Files = Mapping[int, MaildirEntry]


def _snapshot(
    entries: Sequence[MaildirEntry],
    uids: tuple[int, int, Mapping[str, int]],
    claimed: frozenset[str],
    last: tuple[Snapshot, _Files] | None,
) -> tuple[Snapshot, _Files]:
    """The mailbox as IMAP sees it, and each UID's file.

    ``claimed``: the keys whose \\Recent this session took now. A message with the same
    UID and the same entry as in ``last`` keeps its record (no change of file, flags or
    \\Recent): after one arrival, a snapshot is not built again message by message.
    """
    validity, uidnext, by_key = uids
    by_uid = {by_key[e.key]: e for e in entries if e.key in by_key}
    last_records = {r.uid: r for r in last[0].messages} if last is not None else {}
    last_files = last[1] if last is not None else {}
    records = tuple(
        last_records[uid]
        if last_files.get(uid) is e and e.key not in claimed
        else MessageRecord(
            uid=uid,
            flags=e.flags,
            size=e.size,
            internaldate=e.mtime,
            recent=e.recent or e.key in claimed,
        )
        for uid, e in sorted(by_uid.items())
    )
    return Snapshot(uidvalidity=validity, uidnext=uidnext, messages=records), by_uid


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
        return Pop3StoreMaildrop(self.store.maildir(self.accounts.mailbox_of(user)))

    def inbox_ready(self, user: str) -> bool:
        return self.store.known(self.accounts.mailbox_of(user))

    def inbox(self, user: str) -> ImapStoreMailbox:
        return ImapStoreMailbox(self.store.maildir(self.accounts.mailbox_of(user)))
