"""The mail store: one Maildir per user, shared by the smtp, pop3 and imap applications.

The on-disk format is plain Maildir (``tmp/``, ``new/``, ``cur/``) so that other mail tools
(mutt, dovecot, fetchmail's MDAs) read the same folders. Three rules make it safe:

- Delivery is atomic and durable: the message is written to ``tmp/`` with ``O_EXCL``,
  fsynced, renamed into ``new/`` and the directory is fsynced. A reader never sees a partial
  message, and once :meth:`Maildir.deliver` returns the message survives a crash.
- Flags live in the Maildir "info" suffix (``:2,FRS``), the convention every Maildir tool
  shares; IMAP system flags map onto its letters.
- IMAP UIDs are kept in ``portkit-uidlist`` inside the Maildir, updated under a lock, so that
  every session and process agrees on them (RFC 3501 section 2.3.1.1).
- Each message's size and time are kept in ``portkit-index`` beside them: a message file
  never changes once delivered (flags change its name, not its content or mtime), so a
  session lists the directories and stats only messages it has not seen before, instead
  of every message every time. The index is only a cache: a missing or damaged one is
  rebuilt from the files.
- Within one process, the last listing and UID assignment are kept in memory while the
  directories and the UID list are unchanged (see :meth:`Maildir.listing`): a session that
  opens an unchanged mailbox costs a few ``stat`` calls, not a listing and a lock.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import itertools
import os
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar, cast

from portkit._errors import ConfigError, PortkitError

__all__ = [
    "FLAG_LETTERS",
    "Maildir",
    "MaildirEntry",
    "MaildirStore",
    "MaildropLocked",
    "MessageGone",
    "info_flags",
    "message_key",
]

# IMAP system flags and their Maildir info letters (cr.yp.to/proto/maildir.html: "D" draft,
# "F" flagged, "P" passed, "R" replied, "S" seen, "T" trashed).
FLAG_LETTERS: dict[str, str] = {
    "\\Draft": "D",
    "\\Flagged": "F",
    "\\Answered": "R",
    "\\Seen": "S",
    "\\Deleted": "T",
}
_LETTER_FLAGS = {letter: flag for flag, letter in FLAG_LETTERS.items()}

_INFO_SEP = ":2,"
_UIDLIST = "portkit-uidlist"
_UIDLIST_LOCK = ".portkit-uidlist.lock"
_POP3_LOCK = ".portkit-pop3.lock"
_INDEX = "portkit-index"
_INDEX_HEADER = "portkit-index 1"
# Maildir says to clean tmp/ files untouched for 36 hours: a writer that old has died.
_STALE_TMP_SECONDS = 36 * 3600
_USER_RE = re.compile(r"[a-z0-9][a-z0-9._+-]{0,63}")
_counter = itertools.count()
# A directory's mtime is only as fine as the kernel's clock tick (a second on some file
# systems): a change in the same tick as the last one can leave it as it was. What was
# read while the mtime was younger than this is never trusted later, however old the
# mtime has become: a change right after the read may have left it as it was.
_STABLE_NS = 1_000_000_000

T = TypeVar("T")


class MaildropLocked(PortkitError):
    """Another session holds the POP3 maildrop lock (RFC 1939 section 8)."""


class MessageGone(PortkitError):
    """A message was removed (expunged, deleted) by another session."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Listing:
    """The messages of a Maildir at one instant (``new/`` and ``cur/``), oldest first.

    While the Maildir is unchanged :meth:`Maildir.listing` returns the same object, so what
    is built from a listing can be kept as long as the listing is the same.
    """

    stamp: tuple[int, int]  # mtimes of new/ and cur/ (ns) taken before they were listed
    entries: tuple[MaildirEntry, ...]
    settled: bool  # the stamp was older than _STABLE_NS when taken: it can vouch for this


@dataclass(frozen=True, slots=True, kw_only=True)
class _UidMemo:
    keys: frozenset[str]
    stat: tuple[int, int, int]  # the UID list's inode, mtime (ns) and size, once settled
    result: tuple[int, int, Mapping[str, int]]


def _settled(mtime_ns: int) -> bool:
    """Whether a change after now must move an mtime that reads ``mtime_ns`` now."""
    return time.time_ns() - mtime_ns > _STABLE_NS


@dataclass(frozen=True, slots=True, kw_only=True)
class MaildirEntry:
    """One message as a directory scan sees it.

    ``key`` is the unique name without the info suffix: stable across flag changes and the
    move from ``new/`` to ``cur/``, so it is what UIDs and POP3 UIDL are tied to.
    """

    key: str
    directory: Path  # new/ or cur/
    name: str  # the file's name there: the key and the info suffix
    size: int
    mtime: float
    flags: frozenset[str]
    recent: bool  # still in new/: no session has seen it yet

    @property
    def path(self) -> Path:
        # made when asked: a scan builds an entry per message, and most are never opened
        return self.directory / self.name

    @property
    def file(self) -> str:
        """The path as a string, for the os calls that read and rename messages."""
        return f"{self.directory}/{self.name}"


def _safe_hostname() -> str:
    # Maildir: "/" and ":" in the host name are written as octal escapes.
    return socket.gethostname().replace("/", r"\057").replace(":", r"\072") or "localhost"


def _unique_name() -> str:
    # sec.M<usec>P<pid>Q<counter>R<random>.<host> (the modern Maildir form); the padded
    # fields make names from one process sort in delivery order.
    now = time.time()
    sec = int(now)
    usec = int((now - sec) * 1_000_000)
    return f"{sec}.M{usec:06d}P{os.getpid()}Q{next(_counter):06d}R{secrets.token_hex(4)}.{_safe_hostname()}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _DirectorySync:
    """Group commit for directory fsyncs: one fsync covers every rename made before it began.

    A delivery renames its file into ``new/`` and must not be acknowledged until the rename
    is on disk, which takes an fsync of the directory. Deliveries that arrive together
    (several SMTP clients at once) would each wait for their own fsync, one after the
    other; here a delivery whose rename happened before an fsync in progress started waits
    for that one instead, and one whose rename came later waits for the next, which then
    covers every rename queued meanwhile. Each caller still returns only once an fsync that
    began after its own rename has succeeded.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._renamed: dict[str, int] = {}  # renames counted per directory
        self._synced: dict[str, int] = {}  # renames known to be on disk
        self._busy: set[str] = set()  # directories with an fsync in progress

    def renamed(self, directory: Path) -> int:
        """Count a rename into ``directory`` (after it returned); the ticket to wait for."""
        key = str(directory)
        with self._cond:
            ticket = self._renamed.get(key, 0) + 1
            self._renamed[key] = ticket
            return ticket

    def wait(self, directory: Path, ticket: int) -> None:
        """Return once the renames up to ``ticket`` are on disk; raise if the fsync fails."""
        key = str(directory)
        with self._cond:
            while True:
                if self._synced.get(key, 0) >= ticket:
                    return
                if key not in self._busy:
                    break
                self._cond.wait()
            self._busy.add(key)
            covers = self._renamed[key]  # every rename counted so far precedes this fsync
        ok = False
        try:
            _fsync_dir(directory)
            ok = True
        finally:
            with self._cond:
                self._busy.discard(key)
                if ok:
                    self._synced[key] = max(self._synced.get(key, 0), covers)
                self._cond.notify_all()


_directory_sync = _DirectorySync()


def _read_file(path: str, size: int) -> bytes:
    """The whole file at ``path``, whose size the index says is ``size``.

    A message file never changes, so one read of the known size (and one octet more, to
    see the end) takes it whole: open, read, close. A buffered ``open().read()`` would
    also ask whether the file is a terminal and stat it twice, which for a FETCH of
    hundreds of small messages costs more than reading them. A file that turns out longer
    or shorter than the index says is read on to its end all the same.
    """
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.read(fd, size + 1)
        if len(data) == size:
            return data
        parts = [data]
        while chunk := os.read(fd, 1 << 20):
            parts.append(chunk)
        return b"".join(parts)
    finally:
        os.close(fd)


def info_flags(name: str) -> frozenset[str]:
    """The flags a Maildir file name carries in its ``:2,`` info suffix."""
    _, sep, info = name.partition(_INFO_SEP)
    if not sep:
        return frozenset()
    return frozenset(_LETTER_FLAGS[c] for c in info if c in _LETTER_FLAGS)


def message_key(name: str) -> str:
    """A Maildir file name without its info suffix: the message's lasting key."""
    return name.partition(_INFO_SEP)[0].partition(":")[0]


def _info_suffix(flags: Iterable[str], keep_letters: str = "") -> str:
    # Letters must be in ASCII order; unknown letters other tools set (e.g. "P") are kept.
    letters = {FLAG_LETTERS[f] for f in flags if f in FLAG_LETTERS}
    letters.update(c for c in keep_letters if c not in _LETTER_FLAGS)
    return _INFO_SEP + "".join(sorted(letters))


class Maildir:
    """One user's Maildir: deliver, scan, read, flag, delete, lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tmp = path / "tmp"
        self.new = path / "new"
        self.cur = path / "cur"
        # What was last seen, kept while unchanged (assigned whole: safe across threads).
        self._listing: Listing | None = None
        # One listing made at a time: sessions in worker threads share _facts and _indexed.
        self._listing_lock = threading.Lock()
        self._uid_memo: _UidMemo | None = None
        self._derived: tuple[tuple[object, ...], object] | None = None
        self._facts: dict[str, tuple[int, float]] = {}  # {key: (size, mtime)} of files seen
        self._indexed: frozenset[str] | None = None  # the keys in the index file, once read

    def ensure(self) -> None:
        """Create the three directories (and the Maildir itself) when missing.

        New directories are made durable too (their parents fsynced), or the first message
        for a new user could vanish with its directory in a crash.
        """
        if self.tmp.is_dir() and self.new.is_dir() and self.cur.is_dir():
            return
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path.mkdir(exist_ok=True, mode=0o700)
        for sub in (self.tmp, self.new, self.cur):
            sub.mkdir(exist_ok=True, mode=0o700)
        _fsync_dir(self.path)
        _fsync_dir(self.path.parent)

    # -- delivery ---------------------------------------------------------------------------

    def write_tmp(self, data: bytes) -> Path:
        """Write ``data`` to a fresh file in ``tmp/`` and fsync it; return its path."""
        self.ensure()
        while True:
            name = _unique_name()
            path = self.tmp / name
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                continue
            break
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        os.close(fd)
        return path

    def publish(self, tmp_path: Path) -> str:
        """Move a written ``tmp/`` file into ``new/`` (atomic rename); return its key."""
        key = tmp_path.name
        os.rename(tmp_path, self.new / key)
        return key

    def deliver(self, data: bytes, *, flags: Iterable[str] | None = None) -> str:
        """Store one message atomically and durably; return its key.

        With ``flags`` (IMAP APPEND) the message goes straight to ``cur/`` with its info
        suffix, as a message someone has already seen the arrival of.
        """
        tmp_path = self.write_tmp(data)
        if flags is None:
            key = self.publish(tmp_path)
            _directory_sync.wait(self.new, _directory_sync.renamed(self.new))
            return key
        os.rename(tmp_path, self.cur / (tmp_path.name + _info_suffix(flags)))
        _fsync_dir(self.cur)
        return tmp_path.name

    def clean_tmp(self, *, older_than: float = _STALE_TMP_SECONDS) -> int:
        """Remove ``tmp/`` files left by writers that died; return how many."""
        removed = 0
        limit = time.time() - older_than
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(self.tmp):
                with contextlib.suppress(FileNotFoundError):
                    if entry.stat().st_mtime < limit:
                        os.unlink(entry.path)
                        removed += 1
        return removed

    # -- reading ----------------------------------------------------------------------------

    def scan(self) -> list[MaildirEntry]:
        """List every visible message (``new/`` and ``cur/``), oldest first."""
        return list(self.listing().entries)

    def _stamp(self) -> tuple[int, int]:
        try:
            return (os.stat(self.new).st_mtime_ns, os.stat(self.cur).st_mtime_ns)
        except FileNotFoundError:
            return (0, 0)  # never trusted: the next listing looks again

    def listing(self) -> Listing:
        """The messages now; the same :class:`Listing` as last time while nothing changed.

        Every arrival, flag change, move and removal renames or unlinks a file in ``new/``
        or ``cur/``, which moves that directory's mtime; while both are unchanged (and old
        enough to be trusted) the last listing still holds.
        """
        stamp = self._stamp()  # before listing: a change during the listing moves it on
        last = self._listing
        if last is not None and last.settled and last.stamp == stamp:
            return last
        with self._listing_lock:
            settled = stamp != (0, 0) and _settled(max(stamp))
            listing = Listing(stamp=stamp, entries=tuple(self._scan()), settled=settled)
            self._listing = listing
        return listing

    def known(self) -> bool:
        """Whether the Maildir is as this object last saw it, with nothing in ``new/``:
        then :meth:`listing` and :meth:`uids` answer from memory and a session that opens
        it moves no file (a few ``stat`` calls, no listing, no lock, no rename)."""
        last = self._listing
        if last is None or not last.settled or last.stamp != self._stamp():
            return False
        if any(e.recent for e in last.entries):
            return False
        memo = self._uid_memo
        return (
            memo is not None
            and memo.stat == self._uidlist_stat()
            and memo.keys == {e.key for e in last.entries}
        )

    def derived(self, source: tuple[object, ...], build: Callable[[T | None], T]) -> T:
        """What ``build`` makes from ``source`` (e.g. a listing), kept while the same
        objects are given: a mailbox's sessions share one view of an unchanged Maildir.

        ``build`` is given the value it made last time (``None`` at first), to take the
        parts that still hold; one caller, one kind of value.
        """
        last = self._derived
        if (
            last is not None
            and len(last[0]) == len(source)
            and all(a is b for a, b in zip(last[0], source, strict=True))
        ):
            return cast(T, last[1])
        value = build(None if last is None else cast(T, last[1]))
        self._derived = (source, value)
        return value

    def _scan(self) -> list[MaildirEntry]:
        # A file listed last time under the same name in the same directory is the same
        # message with the same flags: its entry is taken as it was. Another one's size and
        # time come from memory, else from the index, else from a stat (then the index
        # learns them).
        last = self._listing
        reuse = {(e.recent, e.name): e for e in last.entries} if last is not None else {}
        facts = self._facts
        learned = False
        entries: list[MaildirEntry] = []
        for sub, recent in ((self.new, True), (self.cur, False)):
            try:
                names = os.listdir(sub)
            except FileNotFoundError:
                continue
            for name in names:
                if name.startswith("."):
                    continue
                entry = reuse.get((recent, name))
                if entry is not None:
                    entries.append(entry)
                    continue
                key = message_key(name)
                known = facts.get(key)
                if known is None and self._indexed is None:
                    from_index = self._read_index()
                    self._indexed = frozenset(from_index)
                    facts.update(from_index)
                    known = facts.get(key)
                if known is None:
                    try:
                        st = os.stat(sub / name)
                    except FileNotFoundError:  # renamed or deleted while we looked
                        continue
                    known = facts[key] = (st.st_size, st.st_mtime)
                    learned = True
                entries.append(
                    MaildirEntry(
                        key=key,
                        directory=sub,
                        name=name,
                        size=known[0],
                        mtime=known[1],
                        flags=info_flags(name) if not recent else frozenset(),
                        recent=recent,
                    )
                )
        present = {e.key for e in entries}
        if len(facts) > len(present):
            self._facts = facts = {k: v for k, v in facts.items() if k in present}
        if learned or (self._indexed is not None and not self._indexed <= present):
            self._write_index(facts)
        entries.sort(key=lambda e: (e.mtime, e.key))
        return entries

    def _read_index(self) -> dict[str, tuple[int, float]]:
        """``{key: (size, mtime)}`` from the index; empty when it is missing or damaged."""
        try:
            text = (self.path / _INDEX).read_text("utf-8")
        except (OSError, UnicodeDecodeError):
            return {}
        lines = text.split("\n")
        if lines[0] != _INDEX_HEADER:
            return {}  # another format: start again from the files
        known: dict[str, tuple[int, float]] = {}
        try:
            for line in lines[1:-1]:  # not the last: it is "" unless the file was cut short
                key, size, mtime = line.split("\t")
                known[key] = (int(size), float(mtime))
        except ValueError:
            return {}
        return known

    def _write_index(self, known: dict[str, tuple[int, float]]) -> None:
        """Replace the index atomically; a failure only costs the next scan some stats."""
        body = [_INDEX_HEADER]
        body.extend(
            f"{key}\t{size}\t{mtime!r}"
            for key, (size, mtime) in known.items()
            if "\t" not in key and "\n" not in key
        )
        tmp = self.path / f".{_INDEX}.{os.getpid()}.{secrets.token_hex(4)}"
        try:
            tmp.write_text("\n".join(body) + "\n", "utf-8")
            os.replace(tmp, self.path / _INDEX)
        except OSError:
            tmp.unlink(missing_ok=True)
            return
        self._indexed = frozenset(known)

    def find(self, key: str) -> MaildirEntry:
        """The current entry for ``key``; raises :class:`MessageGone` if it was removed."""
        for entry in self.scan():
            if entry.key == key:
                return entry
        raise MessageGone(f"message {key!r} is no longer in the mailbox")

    def read(self, entry: MaildirEntry) -> bytes:
        """The message's bytes, following a rename by another session if needed."""
        try:
            return _read_file(entry.file, entry.size)
        except FileNotFoundError:
            return self.find(entry.key).path.read_bytes()

    # -- changes ----------------------------------------------------------------------------

    def set_flags(self, entry: MaildirEntry, flags: Iterable[str]) -> MaildirEntry:
        """Rename the message into ``cur/`` with the info suffix for ``flags``."""
        current = entry
        for _ in range(3):
            old_info = current.name.partition(_INFO_SEP)[2]
            target = current.key + _info_suffix(flags, old_info)
            try:
                if current.directory != self.cur or current.name != target:
                    os.rename(current.file, f"{self.cur}/{target}")
            except FileNotFoundError:
                current = self.find(entry.key)
                continue
            # a rename keeps the content and the mtime: no stat needed
            return MaildirEntry(
                key=entry.key,
                directory=self.cur,
                name=target,
                size=current.size,
                mtime=current.mtime,
                flags=frozenset(f for f in flags if f in FLAG_LETTERS),
                recent=False,
            )
        raise MessageGone(f"message {entry.key!r} is no longer in the mailbox")

    def mark_seen_by_session(self, entries: Sequence[MaildirEntry]) -> list[MaildirEntry]:
        """Move messages from ``new/`` to ``cur/`` (they are no longer recent)."""
        moved: list[MaildirEntry] = []
        for entry in entries:
            if entry.recent:
                with contextlib.suppress(MessageGone):
                    moved.append(self.set_flags(entry, entry.flags))
                    continue
            moved.append(entry)
        return moved

    def delete(self, entry: MaildirEntry) -> None:
        """Remove a message; a message already removed by someone else is fine."""
        try:
            os.unlink(entry.file)
        except FileNotFoundError:
            with contextlib.suppress(MessageGone):
                self.find(entry.key).path.unlink(missing_ok=True)

    # -- locks and UIDs ---------------------------------------------------------------------

    @contextlib.contextmanager
    def _flock(self, name: str, *, blocking: bool) -> Iterator[None]:
        self.ensure()
        fd = os.open(self.path / name, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except OSError as exc:
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise MaildropLocked(f"maildrop {self.path.name!r} is locked") from None
                raise
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the flock

    def pop3_lock(self) -> contextlib.AbstractContextManager[None]:
        """The exclusive maildrop lock of RFC 1939 section 8; raises :class:`MaildropLocked`."""
        return self._flock(_POP3_LOCK, blocking=False)

    def _uidlist_stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path / _UIDLIST)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def uids(self, entries: Sequence[MaildirEntry]) -> tuple[int, int, Mapping[str, int]]:
        """Assign UIDs to new keys; return ``(uidvalidity, uidnext, {key: uid})``.

        UIDs are strictly ascending in arrival order and never reused (RFC 3501 2.3.1.1).
        Keys no longer present are dropped from the list. For the same keys as last time,
        while the list file is the one last read or written, the answer is the last one
        (the same object), with no lock taken: the list is always replaced by a rename, so
        any change gives it a new inode and mtime.
        """
        present = frozenset(e.key for e in entries)
        memo = self._uid_memo
        if memo is not None and memo.keys == present:
            stat = self._uidlist_stat()
            if stat == memo.stat:
                return memo.result
        with self._flock(_UIDLIST_LOCK, blocking=True):
            validity, uidnext, known = self._read_uidlist()
            changed = False
            for entry in entries:
                if entry.key not in known:
                    known[entry.key] = uidnext
                    uidnext += 1
                    changed = True
            for key in [k for k in known if k not in present]:
                del known[key]
                changed = True
            stat = self._uidlist_stat()
            if changed or stat is None:
                self._write_uidlist(validity, uidnext, known)
                stat = self._uidlist_stat()
            result = (validity, uidnext, known)
            if stat is not None and _settled(stat[1]):
                self._uid_memo = _UidMemo(keys=present, stat=stat, result=result)
            return result

    def _read_uidlist(self) -> tuple[int, int, dict[str, int]]:
        try:
            lines = (self.path / _UIDLIST).read_text("ascii").splitlines()
        except FileNotFoundError:
            return int(time.time()), 1, {}
        try:
            head = lines[0].split()
            validity, uidnext = int(head[0]), int(head[1])
            known: dict[str, int] = {}
            for line in lines[1:]:
                uid, key = line.split(" ", 1)
                known[key] = int(uid)
        except (IndexError, ValueError):
            # A damaged list: start a new UID epoch, as RFC 3501 allows by a new UIDVALIDITY.
            return int(time.time()), 1, {}
        return validity, uidnext, known

    def _write_uidlist(self, validity: int, uidnext: int, known: dict[str, int]) -> None:
        body = [f"{validity} {uidnext}"]
        body.extend(f"{uid} {key}" for key, uid in sorted(known.items(), key=lambda kv: kv[1]))
        tmp = self.path / f".{_UIDLIST}.{os.getpid()}.{secrets.token_hex(4)}"
        tmp.write_text("\n".join(body) + "\n", "ascii")
        os.replace(tmp, self.path / _UIDLIST)


class MaildirStore:
    """The root directory holding one Maildir per user (``<root>/<user>/``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        # One Maildir object per user, so that its sessions share what it keeps in memory.
        self._boxes: dict[str, Maildir] = {}

    def maildir(self, user: str) -> Maildir:
        """The Maildir of ``user`` (created on first use)."""
        box = self._boxes.get(user)
        if box is None:
            if not _USER_RE.fullmatch(user):
                raise ConfigError(
                    f"mail user names are lower-case letters, digits, '._+-', not {user!r}"
                )
            box = self._boxes.setdefault(user, Maildir(self.root / user))
        box.ensure()
        return box

    def known(self, user: str) -> bool:
        """Whether ``user``'s Maildir is open here and unchanged (see
        :meth:`Maildir.known`); never creates or touches anything."""
        box = self._boxes.get(user)
        return box is not None and box.known()

    def deliver(self, users: Sequence[str], data: bytes) -> dict[str, str]:
        """Store ``data`` once per user, all or nothing as far as a crash allows.

        Every copy is written and fsynced in ``tmp/`` first; only then are they renamed into
        ``new/`` and the directories fsynced. If writing any copy fails, none is published.
        Returns ``{user: key}``.
        """
        boxes = [self.maildir(u) for u in dict.fromkeys(users)]
        written: list[tuple[Maildir, Path]] = []
        try:
            written.extend((box, box.write_tmp(data)) for box in boxes)
        except BaseException:
            for _, path in written:
                path.unlink(missing_ok=True)
            raise
        keys: dict[str, str] = {}
        tickets: list[tuple[Path, int]] = []
        for box, path in written:
            keys[box.path.name] = box.publish(path)
            tickets.append((box.new, _directory_sync.renamed(box.new)))
        for directory, ticket in tickets:
            _directory_sync.wait(directory, ticket)
        return keys
