"""A listing index of the mail store, for the console's inbox and its HTTP API.

The store (:mod:`portkit.host.apps.mail._store`) is plain Maildir: one directory per user,
messages as files. Listing 10,000 messages by opening each one per request would read the
whole store every time, so the console keeps, per message, only what a listing shows (the
envelope headers, size, date, read flag) and refreshes it from the directories:

- a directory whose modification time has not changed since the last look is not listed
  again (delivery, flag changes and deletion all rename a file in or out of ``new/`` or
  ``cur/``, which changes that directory's time);
- a directory changed shortly before it was listed is listed again next time even if its
  time looks unchanged, because file-system timestamps are coarser than a fast writer;
- only the header block of a message new to the index is read (at most
  :data:`HEADER_LIMIT` bytes), never its body.

So a request costs two ``stat`` calls per user when nothing changed, and the index holds a
few hundred bytes per message, never message bodies. Search by body reads the candidate
messages one at a time (see :meth:`MailIndex.search`).

Message IDs are opaque, URL-safe and stable across restarts: a hash of the user and the
Maildir key (the key survives flag changes and the move from ``new/`` to ``cur/``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import email.header
import email.parser
import email.policy
import email.utils
import hashlib
import os
import shlex
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from email.message import Message
from pathlib import Path

from portkit.host.apps.mail._store import (
    Maildir,
    MaildirEntry,
    MessageGone,
    info_flags,
    message_key,
)

__all__ = ["Address", "MailIndex", "MessageMeta", "Query", "message_id"]

#: Bytes read from the start of a message to find its header block.
HEADER_LIMIT = 64 * 1024
#: A directory changed less than this (seconds) before we listed it is listed again on the
#: next look (more than the coarsest file-system clock tick).
_SETTLE = 0.05
#: Body bytes a body search looks at per message.
BODY_SEARCH_LIMIT = 1024 * 1024

_SEEN = "\\Seen"


@dataclasses.dataclass(frozen=True, slots=True)
class Address:
    """A display name and an address, as a header names them."""

    name: str
    address: str

    def as_json(self) -> dict[str, str]:
        return {"Name": self.name, "Address": self.address}

    def __str__(self) -> str:
        return f"{self.name} <{self.address}>" if self.name else self.address


@dataclasses.dataclass(slots=True)
class MessageMeta:
    """What the inbox shows of one message."""

    id: str
    user: str
    key: str
    path: Path
    size: int
    mtime: float
    flags: frozenset[str]
    recent: bool
    sender: Address | None
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    subject: str
    date: datetime  # the Date: header, else the delivery time
    message_id: str

    @property
    def read(self) -> bool:
        return _SEEN in self.flags

    def entry(self) -> MaildirEntry:
        """The store's own description of this message (for flag changes and deletion)."""
        return MaildirEntry(
            key=self.key,
            directory=self.path.parent,
            name=self.path.name,
            size=self.size,
            mtime=self.mtime,
            flags=self.flags,
            recent=self.recent,
        )

    def as_json(self) -> dict[str, object]:
        """The Mailpit-shaped summary of a message."""
        return {
            "ID": self.id,
            "MessageID": self.message_id,
            "Mailbox": self.user,
            "From": self.sender.as_json() if self.sender else {"Name": "", "Address": ""},
            "To": [a.as_json() for a in self.to],
            "Cc": [a.as_json() for a in self.cc],
            "Subject": self.subject,
            "Created": self.date.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "Size": self.size,
            "Read": self.read,
        }


def _age(meta: MessageMeta) -> tuple[float, str]:
    return (meta.mtime, meta.key)


def message_id(user: str, key: str) -> str:
    """The console's ID of message ``key`` in ``user``'s Maildir (16 hex digits)."""
    return hashlib.blake2b(f"{user}/{key}".encode(), digest_size=8).hexdigest()


def _header_text(value: str | None) -> str:
    """A header value decoded (RFC 2047) and flattened to one line."""
    if not value:
        return ""
    try:
        text = str(email.header.make_header(email.header.decode_header(value)))
    except (ValueError, LookupError, UnicodeError):
        text = value
    return " ".join(text.split())


def _addresses(values: Iterable[str]) -> tuple[Address, ...]:
    pairs = email.utils.getaddresses([_header_text(v) for v in values])
    return tuple(Address(name, addr) for name, addr in pairs if name or addr)


def _parse_date(value: str | None, fallback: float) -> datetime:
    if value:
        with contextlib.suppress(TypeError, ValueError, IndexError, OverflowError):
            parsed = email.utils.parsedate_to_datetime(value)
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return datetime.fromtimestamp(fallback, UTC)


def read_header_block(path: Path) -> bytes:
    """The header block of a message file (up to :data:`HEADER_LIMIT` bytes)."""
    with path.open("rb") as f:
        head = f.read(HEADER_LIMIT)
    for sep in (b"\r\n\r\n", b"\n\n"):
        end = head.find(sep)
        if end >= 0:
            return head[: end + len(sep)]
    return head


_HEADER_PARSER = email.parser.BytesHeaderParser(policy=email.policy.compat32)


def _all(headers: Message, name: str) -> list[str]:
    # compat32 gives a Header object, not a str, for a value with non-ASCII bytes.
    return [str(v) for v in headers.get_all(name, [])]


def _one(headers: Message, name: str) -> str | None:
    value = headers.get(name)
    return None if value is None else str(value)


def _meta(user: str, key: str, path: Path, size: int, mtime: float, recent: bool) -> MessageMeta:
    # compat32 keeps raw header strings (no eager structured parsing): hostile or
    # malformed headers cannot raise here, and decoding happens in _header_text.
    headers = _HEADER_PARSER.parsebytes(read_header_block(path))
    froms = _addresses(_all(headers, "From"))
    return MessageMeta(
        id=message_id(user, key),
        user=user,
        key=key,
        path=path,
        size=size,
        mtime=mtime,
        flags=info_flags(path.name) if not recent else frozenset(),
        recent=recent,
        sender=froms[0] if froms else None,
        to=_addresses(_all(headers, "To")),
        cc=_addresses(_all(headers, "Cc")),
        subject=_header_text(_one(headers, "Subject")),
        date=_parse_date(_one(headers, "Date"), mtime),
        message_id=_header_text(_one(headers, "Message-ID")).strip("<>"),
    )


@dataclasses.dataclass(frozen=True, slots=True)
class Query:
    """A search: ``from:``, ``to:``, ``subject:`` terms and free words (any field or body)."""

    sender: tuple[str, ...] = ()
    to: tuple[str, ...] = ()
    subject: tuple[str, ...] = ()
    words: tuple[str, ...] = ()
    read: bool | None = None  # is:read / is:unread

    @classmethod
    def parse(cls, text: str) -> Query:
        try:
            tokens = shlex.split(text)
        except ValueError:  # an unbalanced quote: take the words as they are
            tokens = text.split()
        fields: dict[str, list[str]] = {"from": [], "to": [], "subject": [], "": []}
        read: bool | None = None
        for token in tokens:
            name, sep, value = token.partition(":")
            name = name.lower()
            if sep and name in fields and name and value:
                fields[name].append(value.lower())
            elif sep and name == "is" and value.lower() in ("read", "unread"):
                read = value.lower() == "read"
            else:
                fields[""].append(token.lower())
        return cls(
            sender=tuple(fields["from"]),
            to=tuple(fields["to"]),
            subject=tuple(fields["subject"]),
            words=tuple(fields[""]),
            read=read,
        )

    def match_headers(self, meta: MessageMeta) -> bool:
        """Whether the fielded terms match (free words are checked by :meth:`match_words`)."""
        sender = str(meta.sender or "").lower()
        to = " ".join(str(a) for a in (*meta.to, *meta.cc)).lower()
        subject = meta.subject.lower()
        return (
            (self.read is None or meta.read == self.read)
            and all(t in sender for t in self.sender)
            and all(t in to for t in self.to)
            and all(t in subject for t in self.subject)
        )

    def headline(self, meta: MessageMeta) -> str:
        return " ".join(
            (str(meta.sender or ""), *(str(a) for a in (*meta.to, *meta.cc)), meta.subject)
        ).lower()


def body_has(path: Path, words: Iterable[str]) -> bool:
    """Whether every word is in the message's text parts (decoded), read once."""
    with path.open("rb") as f:
        raw = f.read(BODY_SEARCH_LIMIT)
    lowered = raw.lower()
    # Parsing MIME is the slow part: skip it when the words cannot be there, i.e. they are
    # not in the bytes and no part hides text in base64 or quoted-printable.
    needed = [w for w in words if w.encode("utf-8", "replace") not in lowered]
    if needed and b"base64" not in lowered and b"quoted-printable" not in lowered:
        return False
    text = body_text(raw)
    return all(w in text for w in words)


def body_text(raw: bytes) -> str:
    """The text a body search looks in: the message's text parts, decoded, lower-case.

    The compat32 parser is used on purpose: it only splits parts and undoes transfer
    encodings, several times faster than the modern policy's content managers, which a
    search over thousands of messages notices.
    """
    try:
        msg = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(raw)
        parts: list[str] = []
        for part in msg.walk():
            if (
                part.get_content_maintype() != "text"
                or part.get_content_disposition() == "attachment"
            ):
                continue
            payload = part.get_payload(decode=True)
            if not isinstance(payload, bytes):
                continue
            charset = part.get_content_charset() or "utf-8"
            try:
                parts.append(payload.decode(charset, "replace"))
            except LookupError:  # an unknown charset name
                parts.append(payload.decode("utf-8", "replace"))
        return "\n".join(parts).lower()
    except Exception:  # malformed MIME: fall back to the bytes as text
        return raw.decode("utf-8", "replace").lower()


class MailIndex:
    """The listing index of every Maildir under ``root`` (thread-safe; call from threads)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._by_id: dict[str, MessageMeta] = {}
        self._newest_first: list[MessageMeta] = []
        self._dir_times: dict[Path, int] = {}  # new/ or cur/ -> st_mtime_ns when listed
        self._dir_keys: dict[Path, dict[str, MessageMeta]] = {}
        self.generation = 0  # grows whenever the listing changes
        self._added: list[MessageMeta] = []  # parsed during this refresh
        self._reordered = False  # this refresh removed or renamed messages
        self._unread: int | None = None

    # -- refreshing -------------------------------------------------------------------------

    def _users(self) -> list[str]:
        try:
            return sorted(
                e.name
                for e in os.scandir(self.root)
                if e.is_dir() and not e.name.startswith(".") and os.path.isdir(Path(e.path, "cur"))
            )
        except FileNotFoundError:
            return []

    def refresh(self) -> bool:
        """Bring the index up to date; return whether anything changed."""
        with self._lock:
            changed = False
            self._added = []
            self._reordered = False
            seen_dirs: set[Path] = set()
            for user in self._users():
                # cur/ first: a message moved from new/ is then found under its new name
                # before its old name disappears, and keeps its parsed headers.
                for sub, recent in (("cur", False), ("new", True)):
                    directory = self.root / user / sub
                    seen_dirs.add(directory)
                    changed |= self._refresh_dir(user, directory, recent)
            for gone in [d for d in self._dir_keys if d not in seen_dirs]:
                for meta in self._dir_keys.pop(gone).values():
                    self._by_id.pop(meta.id, None)
                self._dir_times.pop(gone, None)
                changed = self._reordered = True
            if changed:
                self._newest_first = self._sorted()
                self._unread = None
                self.generation += 1
            return changed

    def _sorted(self) -> list[MessageMeta]:
        """The listing, newest first, after a change."""
        listing = self._newest_first
        added = sorted(self._added, key=_age, reverse=True)
        if not self._reordered and (not listing or (added and _age(added[-1]) > _age(listing[0]))):
            # Only new arrivals, all newer than the newest listed (the usual case while mail
            # comes in): put them on top instead of sorting everything again.
            return added + listing
        return sorted(self._by_id.values(), key=_age, reverse=True)

    def _refresh_dir(self, user: str, directory: Path, recent: bool) -> bool:
        try:
            st = directory.stat()
        except FileNotFoundError:
            return False
        if self._dir_times.get(directory) == st.st_mtime_ns:
            return False
        old = self._dir_keys.get(directory, {})
        listed_at = time.time()
        try:
            names = set(os.listdir(directory))
        except FileNotFoundError:
            names = set()
        # Set arithmetic on names, not a loop over the directory: with 10,000 messages
        # and mail arriving, most of a refresh is this comparison. (Dot-files are never
        # added, so only the new names need that check.)
        added = {n for n in names - old.keys() if not n.startswith(".")}
        gone = old.keys() - names
        if not added and not gone:
            self._remember(directory, st.st_mtime_ns, listed_at)
            return False
        fresh = old  # updated in place: copying 10,000 entries per arrival costs more
        for name in added:
            key = message_key(name)
            path = directory / name
            moved = self._by_id.get(message_id(user, key))
            try:
                info = path.stat()
                if moved is not None:  # same message, new name: keep its parsed headers
                    meta = dataclasses.replace(
                        moved,
                        path=path,
                        flags=info_flags(name) if not recent else frozenset(),
                        recent=recent,
                        mtime=info.st_mtime,
                    )
                    self._reordered = True
                else:
                    meta = _meta(user, key, path, info.st_size, info.st_mtime, recent)
                    self._added.append(meta)
            except FileNotFoundError:  # renamed or deleted while we looked
                continue
            fresh[name] = meta
            self._by_id[meta.id] = meta
        for name in gone:
            meta = old.pop(name)
            if self._by_id.get(meta.id) is meta:
                del self._by_id[meta.id]
            self._reordered = True
        self._dir_keys[directory] = fresh
        self._remember(directory, st.st_mtime_ns, listed_at)
        return True

    def _remember(self, directory: Path, mtime_ns: int, listed_at: float) -> None:
        # File-system timestamps are coarse (a clock tick of a few milliseconds): a change
        # made just after our listing, within the same tick, would leave the directory's
        # time unchanged. So the time is trusted only if the listing began well after it.
        settled = listed_at - mtime_ns / 1e9 > _SETTLE
        self._dir_times[directory] = mtime_ns if settled else -1

    # -- reading ----------------------------------------------------------------------------

    @property
    def total(self) -> int:
        return len(self._newest_first)

    @property
    def unread(self) -> int:
        if self._unread is None:
            self._unread = sum(1 for m in self._newest_first if not m.read)
        return self._unread

    def page(self, start: int, limit: int) -> tuple[int, list[MessageMeta]]:
        """``(total, messages)``: ``limit`` messages from ``start``, newest first."""
        listing = self._newest_first
        return len(listing), listing[start : start + limit]

    def get(self, ident: str) -> MessageMeta | None:
        return self._by_id.get(ident)

    def search(self, text: str, start: int, limit: int) -> tuple[int, list[MessageMeta]]:
        """Messages matching ``text`` (see :class:`Query`), newest first.

        Free words are looked for in the envelope first and in the body only when the
        envelope does not have them, reading one message at a time.
        """
        query = Query.parse(text)
        found = list(self._matching(query))
        return len(found), found[start : start + limit]

    def _matching(self, query: Query) -> Iterator[MessageMeta]:
        for meta in list(self._newest_first):
            if not query.match_headers(meta):
                continue
            if query.words:
                head = query.headline(meta)
                missing = [w for w in query.words if w not in head]
                if missing:
                    try:
                        if not body_has(meta.path, missing):
                            continue
                    except FileNotFoundError:
                        continue
            yield meta

    # -- changes ----------------------------------------------------------------------------

    def set_read(self, ident: str, read: bool) -> MessageMeta | None:
        """Set or clear the Seen flag of one message (in the store, then the index)."""
        meta = self.get(ident)
        if meta is None:
            return None
        flags = set(meta.flags)
        if read:
            flags.add(_SEEN)
        else:
            flags.discard(_SEEN)
        if meta.read == read and not meta.recent:
            return meta
        box = Maildir(self.root / meta.user)
        try:
            entry = box.set_flags(meta.entry(), flags)
        except MessageGone:
            return None
        with self._lock:
            meta.path, meta.flags, meta.recent = entry.path, entry.flags, False
            self._unread = None
        return meta

    def delete(self, idents: Iterable[str] | None = None) -> int:
        """Delete the messages ``idents`` (every message with None); return how many."""
        with self._lock:
            targets = (
                list(self._by_id.values())
                if idents is None
                else [m for i in idents if (m := self._by_id.get(i)) is not None]
            )
        for meta in targets:
            Maildir(self.root / meta.user).delete(meta.entry())
        self.refresh()
        return len(targets)
