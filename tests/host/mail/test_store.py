"""The Maildir store: atomic delivery, info-suffix flags, UIDs, the POP3 lock."""

from __future__ import annotations

import dataclasses
import errno
import mailbox
import os
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portkit._errors import ConfigError
from portkit.host.apps.mail import Maildir, MaildirStore, MaildropLocked
from portkit.host.apps.mail._backend import ImapStoreMailbox
from portkit.host.apps.mail._store import MaildirEntry, MessageGone


def test_delivery_lands_in_new_and_standard_tools_read_it(tmp_path: Path) -> None:
    box = MaildirStore(tmp_path).maildir("alice")
    key = box.deliver(b"Subject: a\r\n\r\nbody\r\n")
    assert (box.new / key).read_bytes() == b"Subject: a\r\n\r\nbody\r\n"
    assert list(box.tmp.iterdir()) == []
    # Python's own Maildir reader (a different implementation) sees the same message
    other = mailbox.Maildir(box.path, create=False)
    [message] = list(other)
    assert message["Subject"] == "a"


def test_flags_map_to_info_letters_both_ways(tmp_path: Path) -> None:
    box = MaildirStore(tmp_path).maildir("alice")
    box.deliver(b"x")
    [entry] = box.scan()
    assert entry.recent
    entry = box.set_flags(entry, {"\\Seen", "\\Flagged", "\\Deleted"})
    assert entry.path.name.endswith(":2,FST")
    # a letter another tool set (P = passed) survives our flag changes
    os.rename(entry.path, entry.path.with_name(entry.key + ":2,FPST"))
    [entry] = box.scan()
    assert entry.flags == {"\\Seen", "\\Flagged", "\\Deleted"}
    entry = box.set_flags(entry, {"\\Answered"})
    assert entry.path.name.endswith(":2,PR")
    other = mailbox.Maildir(box.path, create=False)
    assert [m.get_flags() for m in other] == ["PR"]


def test_uids_ascend_and_are_never_reused(tmp_path: Path) -> None:
    box = MaildirStore(tmp_path).maildir("alice")
    first = box.deliver(b"1")
    second = box.deliver(b"2")
    validity, uidnext, uids = box.uids(box.scan())
    assert (uids[first], uids[second], uidnext) == (1, 2, 3)
    box.delete(box.find(second))
    third = box.deliver(b"3")
    validity2, uidnext2, uids2 = box.uids(box.scan())
    assert validity2 == validity
    assert uids2 == {first: 1, third: 3}
    assert uidnext2 == 4


def test_pop3_lock_is_exclusive(tmp_path: Path) -> None:
    box = MaildirStore(tmp_path).maildir("alice")
    with box.pop3_lock(), pytest.raises(MaildropLocked, match="alice"), box.pop3_lock():
        pass
    with box.pop3_lock():
        pass  # released


def test_multi_user_delivery_is_all_or_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = MaildirStore(tmp_path)
    real_write = Maildir.write_tmp

    def disk_full_for_bob(self: Maildir, data: bytes) -> Path:
        if self.path.name == "bob":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, data)

    monkeypatch.setattr(Maildir, "write_tmp", disk_full_for_bob)
    with pytest.raises(OSError, match="No space left"):
        store.deliver(["alice", "bob"], b"data")
    alice = store.maildir("alice")
    assert alice.scan() == []
    assert list(alice.tmp.iterdir()) == []


def test_stale_tmp_files_are_cleaned(tmp_path: Path) -> None:
    box = MaildirStore(tmp_path).maildir("alice")
    stale = box.write_tmp(b"half")
    old = time.time() - 40 * 3600
    os.utime(stale, (old, old))
    fresh = box.write_tmp(b"in progress")
    assert box.clean_tmp() == 1
    assert not stale.exists()
    assert fresh.exists()


def test_read_follows_a_rename_and_reports_gone(tmp_path: Path) -> None:
    box = MaildirStore(tmp_path).maildir("alice")
    box.deliver(b"payload")
    [entry] = box.scan()
    box.set_flags(entry, {"\\Seen"})  # another session moved it to cur/
    assert box.read(entry) == b"payload"
    box.delete(box.find(entry.key))
    with pytest.raises(MessageGone):
        box.read(entry)


def test_bad_user_names_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'\.\./etc'"):
        MaildirStore(tmp_path).maildir("../etc")


def test_imap_snapshot_reuses_a_scan_only_while_the_maildir_is_unchanged(tmp_path: Path) -> None:
    box = MaildirStore(tmp_path).maildir("alice")
    box.deliver(b"one")
    inbox = ImapStoreMailbox(box)
    assert len(inbox.snapshot(claim_recent=True).messages) == 1
    old = time.time() - 10
    for path in (box.new, box.cur, box.path / "portkit-uidlist"):
        os.utime(path, (old, old))
    settled = inbox.snapshot(claim_recent=True)
    assert inbox.snapshot(claim_recent=True) is settled  # nothing changed: no rescan
    # another session of the same mailbox shares it
    assert ImapStoreMailbox(box).snapshot(claim_recent=True) is settled
    box.deliver(b"two")
    assert len(inbox.snapshot(claim_recent=True).messages) == 2


def test_sessions_share_a_listing_only_while_the_directories_are_unchanged(
    tmp_path: Path,
) -> None:
    store = MaildirStore(tmp_path)
    box = store.maildir("alice")
    assert store.maildir("alice") is box  # one object per user: its memory is shared
    key = box.deliver(b"one")
    old = time.time() - 10
    for directory in (box.new, box.cur):
        os.utime(directory, (old, old))
    listing = box.listing()
    assert box.listing() is listing
    # a change by another process (its own Maildir object) is seen at once
    other = Maildir(box.path)
    [entry] = other.scan()
    other.set_flags(entry, {"\\Seen"})
    [moved] = box.listing().entries
    assert (moved.key, moved.directory, moved.flags) == (key, box.cur, frozenset({"\\Seen"}))
    # a listing younger than the clock's granularity is not trusted, even if unchanged
    assert box.listing() is not box.listing()


def test_uids_follow_a_list_another_process_replaced(tmp_path: Path) -> None:
    box = MaildirStore(tmp_path).maildir("alice")
    key = box.deliver(b"one")
    uidlist = box.path / "portkit-uidlist"
    old = time.time() - 10
    box.uids(box.scan())  # writes the list
    os.utime(uidlist, (old, old))
    validity, _, uids = box.uids(box.scan())  # reads it under the lock
    assert box.uids(box.scan())[2] is uids  # unchanged: the same answer, no lock
    # another process starts a new UID epoch (RFC 3501 2.3.1.1) by replacing the list
    replacement = box.path / "uidlist.new"
    replacement.write_text(f"{validity + 1} 8\n7 {key}\n", "ascii")
    os.replace(replacement, uidlist)
    os.utime(uidlist, (old, old))
    assert box.uids(box.scan()) == (validity + 1, 8, {key: 7})


def test_the_index_keeps_sizes_and_times_and_follows_the_folder(tmp_path: Path) -> None:
    box = MaildirStore(tmp_path).maildir("alice")
    first = box.deliver(b"x" * 10)
    second = box.deliver(b"y" * 2000)
    scanned = {e.key: (e.size, e.mtime) for e in box.scan()}
    assert scanned == {
        first: (10, os.stat(box.new / first).st_mtime),
        second: (2000, os.stat(box.new / second).st_mtime),
    }
    index = (box.path / "portkit-index").read_text().splitlines()
    assert index[0] == "portkit-index 1"
    assert sorted(line.split("\t")[:2] for line in index[1:]) == sorted(
        [[first, "10"], [second, "2000"]]
    )
    # a message another tool put there is stat'ed once and joins the index; a removed
    # one leaves it
    (box.cur / "1700000000.foreign:2,S").write_bytes(b"z" * 77)
    (box.new / first).unlink()
    assert {e.key: e.size for e in box.scan()} == {second: 2000, "1700000000.foreign": 77}

    def indexed() -> set[str]:
        lines = (box.path / "portkit-index").read_text().splitlines()[1:]
        return {line.split("\t")[0] for line in lines}

    assert indexed() == {second, "1700000000.foreign"}
    (box.new / second).unlink()  # nothing new to learn: the index still forgets it
    box.scan()
    assert indexed() == {"1700000000.foreign"}


def test_sizes_come_from_the_index_once_known(tmp_path: Path) -> None:
    # Messages never change once delivered, so the index is trusted over a stat; this
    # shows it is read (a damaged index, below, is not).
    box = MaildirStore(tmp_path).maildir("alice")
    key = box.deliver(b"x" * 10)
    box.scan()
    index = box.path / "portkit-index"
    index.write_text(index.read_text().replace(f"{key}\t10\t", f"{key}\t11\t"))
    # a process starting afresh (the running one keeps what it learned in memory)
    assert [e.size for e in Maildir(box.path).scan()] == [11]


@pytest.mark.parametrize(
    "damage",
    [
        b"",
        b"portkit-index 1\nkey\tnot-a-number\t1.0\n",
        b"portkit-index 1\nkey\t1",
        b"portkit-index 1\nkey\t10\t17",  # cut short in the time: parses, but wrong
    ],
)
def test_a_damaged_index_is_rebuilt_from_the_files(tmp_path: Path, damage: bytes) -> None:
    box = MaildirStore(tmp_path).maildir("alice")
    key = box.deliver(b"x" * 10)
    box.scan()
    (box.path / "portkit-index").write_bytes(damage.replace(b"key", key.encode()))
    mtime = os.stat(box.new / key).st_mtime
    fresh = Maildir(box.path)  # a process starting afresh
    assert [(e.key, e.size, e.mtime) for e in fresh.scan()] == [(key, 10, mtime)]
    assert f"{key}\t10\t" in (box.path / "portkit-index").read_text()


def test_deliveries_arriving_together_share_one_directory_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from portkit.host.apps.mail import _store

    store = MaildirStore(tmp_path)
    box = store.maildir("alice")
    real_fsync_dir = _store._fsync_dir
    synced: list[set[str]] = []  # what new/ held at each fsync of it
    first_started = threading.Event()
    release_first = threading.Event()

    def fsync_dir(path: Path) -> None:
        if Path(path) == box.new:
            synced.append(set(os.listdir(path)))
            if len(synced) == 1:
                first_started.set()
                assert release_first.wait(30)
        real_fsync_dir(path)

    monkeypatch.setattr(_store, "_fsync_dir", fsync_dir)
    keys: dict[int, str] = {}

    def deliver(n: int) -> None:
        keys[n] = store.deliver(["alice"], b"message %d\r\n" % n)["alice"]

    first = threading.Thread(target=deliver, args=(0,))
    first.start()
    assert first_started.wait(30)  # its fsync is under way (and held there)
    others = [threading.Thread(target=deliver, args=(n,)) for n in range(1, 8)]
    for thread in others:
        thread.start()
    for _ in range(3000):  # bounded: until all seven have renamed and wait for an fsync
        if len(os.listdir(box.new)) == 8:
            break
        time.sleep(0.01)
    assert not any(key in keys for key in range(1, 8))  # none acknowledged before an fsync
    release_first.set()
    for thread in [first, *others]:
        thread.join(30)
    assert len(keys) == 8
    # one fsync for the first, one more covering the seven that came while it ran
    assert len(synced) == 2
    assert {keys[n] for n in range(1, 8)} <= synced[1]


@pytest.mark.parametrize("indexed", [0, 1, 4095, 4096, 4097, 100_000])
def test_a_message_is_read_whole_whatever_size_the_index_says(tmp_path: Path, indexed: int) -> None:
    box = MaildirStore(tmp_path).maildir("alice")
    data = os.urandom(4096)
    box.deliver(data)
    [entry] = box.scan()
    assert box.read(dataclasses.replace(entry, size=indexed)) == data


def test_a_listing_made_while_the_mtimes_were_fresh_is_never_trusted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from portkit.host.apps.mail import _store

    box = MaildirStore(tmp_path).maildir("alice")
    box.deliver(b"one")
    fresh = time.time_ns() - 500_000_000  # younger than a second: a tick may hide a change
    for directory in (box.new, box.cur):
        os.utime(directory, ns=(fresh, fresh))
    assert len(box.listing().entries) == 1
    # a second delivery in the same clock tick leaves the mtime as it was
    box.deliver(b"two")
    for directory in (box.new, box.cur):
        os.utime(directory, ns=(fresh, fresh))
    # later the same mtime looks settled, but the listing was made while it was not
    monkeypatch.setattr(_store, "_STABLE_NS", 100_000_000)
    assert len(box.listing().entries) == 2


_OPS = st.lists(
    st.sampled_from(["deliver", "append", "flag", "delete", "claim", "outside", "renumber", "age"]),
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(ops=_OPS, picks=st.lists(st.integers(0, 50), min_size=12, max_size=12))
def test_what_a_maildir_keeps_in_memory_matches_a_fresh_look(
    ops: list[str], picks: list[int]
) -> None:
    # Differential: the long-lived Maildir (listing kept and reused, entries reused, UIDs
    # memoised, one shared snapshot) against a new object that knows nothing, after any
    # sequence of changes made through it or by another process.
    with tempfile.TemporaryDirectory() as root:
        box = MaildirStore(Path(root)).maildir("alice")
        outside = Maildir(box.path)
        for step, (op, pick) in enumerate(zip(ops, picks, strict=False)):
            entries = box.scan()
            entry = entries[pick % len(entries)] if entries else None
            if op == "deliver":
                box.deliver(b"message %d" % step)
            elif op == "append":
                box.deliver(b"appended %d" % step, flags={"\\Seen"})
            elif op == "flag" and entry is not None:
                box.set_flags(entry, {"\\Flagged"} if pick % 2 else {"\\Seen", "\\Answered"})
            elif op == "delete" and entry is not None:
                box.delete(entry)
            elif op == "claim":
                box.mark_seen_by_session(entries)
            elif op == "outside" and entry is not None:
                [theirs] = [e for e in outside.scan() if e.key == entry.key]
                outside.set_flags(theirs, {"\\Deleted"})
            elif op == "renumber" and (box.path / "portkit-uidlist").exists():
                # another process starts a new UID epoch (RFC 3501 2.3.1.1), in a rename
                lines = (box.path / "portkit-uidlist").read_text().splitlines()
                validity = int(lines[0].split()[0])
                keys = [line.split(" ", 1)[1] for line in lines[1:]]
                body = [f"{validity + 1} {len(keys) + 1}"]
                body += [f"{uid} {key}" for uid, key in enumerate(keys, 1)]
                replacement = box.path / f"uidlist.{step}"
                replacement.write_text("\n".join(body) + "\n")
                os.replace(replacement, box.path / "portkit-uidlist")
            elif op == "age":  # everything settles: the memory is trusted from here on
                old = time.time_ns() - 10_000_000_000 - step * 1_000_000
                for path in (box.new, box.cur, box.path / "portkit-uidlist"):
                    if path.exists():
                        os.utime(path, ns=(old, old))
            fresh = Maildir(box.path)
            assert box.scan() == fresh.scan()
            kept = ImapStoreMailbox(box).snapshot(claim_recent=False)
            assert kept == ImapStoreMailbox(fresh).snapshot(claim_recent=False)
            for e in box.scan():
                assert box.read(e) == Path(e.file).read_bytes()


def test_a_maildir_is_known_only_while_unchanged_and_nothing_is_new(tmp_path: Path) -> None:
    store = MaildirStore(tmp_path)
    assert store.known("alice") is False
    assert not (tmp_path / "alice").exists()  # asking creates nothing
    box = store.maildir("alice")
    ages = iter(range(100, 0, -1))

    def settle() -> None:  # as if every change was long ago (each time a new mtime)
        old = time.time_ns() - next(ages) * 1_000_000_000
        for path in (box.new, box.cur, box.path / "portkit-uidlist"):
            os.utime(path, ns=(old, old))

    box.deliver(b"one")
    inbox = ImapStoreMailbox(box)
    inbox.snapshot(claim_recent=True)  # takes \Recent: moves it to cur/
    assert store.known("alice") is False  # just changed: the mtimes are not settled yet
    settle()
    inbox.snapshot(claim_recent=True)  # a settled listing and UID list, kept in memory
    assert store.known("alice") is True
    box.deliver(b"two")
    assert store.known("alice") is False
    inbox.snapshot(claim_recent=False)  # EXAMINE: lists it, leaves it in new/
    settle()
    inbox.snapshot(claim_recent=False)
    assert store.known("alice") is False  # unchanged, but SELECT would move "two"
    inbox.snapshot(claim_recent=True)
    settle()
    inbox.snapshot(claim_recent=True)
    assert store.known("alice") is True
    # another process replaces the UID list (a new epoch): the UIDs in memory may be wrong
    replacement = box.path / "uidlist.new"
    replacement.write_text((box.path / "portkit-uidlist").read_text())
    os.replace(replacement, box.path / "portkit-uidlist")
    assert store.known("alice") is False
    settle()
    inbox.snapshot(claim_recent=True)
    assert store.known("alice") is True
    [entry, _] = Maildir(box.path).scan()  # another process changes a flag
    Maildir(box.path).set_flags(entry, {"\\Seen"})
    assert store.known("alice") is False


def test_listings_are_made_one_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Sessions in worker threads share one Maildir object, whose listing updates what it
    # knows of each file (a dict): two listings at once could change it under each other.
    import threading

    box = MaildirStore(tmp_path).maildir("alice")
    box.deliver(b"one")  # just changed: every listing looks again
    real_scan = Maildir._scan
    active, most = 0, 0
    lock = threading.Lock()

    def slow_scan(self: Maildir) -> list[MaildirEntry]:
        nonlocal active, most
        with lock:
            active += 1
            most = max(most, active)
        try:
            time.sleep(0.2)  # long enough for the other thread to arrive meanwhile
            return real_scan(self)
        finally:
            with lock:
                active -= 1

    monkeypatch.setattr(Maildir, "_scan", slow_scan)
    threads = [threading.Thread(target=box.listing) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert most == 1
    assert [e.key for e in box.listing().entries] == [e.key for e in Maildir(box.path).scan()]
