"""The console's listing index of a Maildir store (no HTTP)."""

from __future__ import annotations

from pathlib import Path

from portkit.host.apps.console._mailindex import MailIndex, Query, message_id
from portkit.host.apps.mail import Maildir


def _raw(subject: str, body: str = "body\r\n", sender: str = "a@example.test") -> bytes:
    return (f"From: {sender}\r\nTo: b@example.test\r\nSubject: {subject}\r\n\r\n{body}").encode()


def test_delivery_flags_and_deletion_are_seen(tmp_path: Path) -> None:
    box = Maildir(tmp_path / "demo")
    index = MailIndex(tmp_path)
    assert index.refresh() is False or index.total == 0
    key = box.deliver(_raw("one"))
    assert index.refresh() is True
    total, [meta] = index.page(0, 10)
    assert total == 1
    assert meta.id == message_id("demo", key)
    assert meta.subject == "one"
    assert meta.read is False
    assert index.set_read(meta.id, True) is not None
    index.refresh()
    moved = index.get(meta.id)
    assert moved is not None
    assert moved.read is True
    assert moved.path.parent.name == "cur"
    assert moved.subject == "one"  # same message, same ID, after the move to cur/
    assert index.delete([meta.id]) == 1
    assert index.total == 0
    assert list(box.cur.iterdir()) == []


def test_newest_first_across_mailboxes_and_paging(tmp_path: Path) -> None:
    for n in range(5):
        Maildir(tmp_path / ("alice" if n % 2 else "bob")).deliver(_raw(f"m{n}"))
    index = MailIndex(tmp_path)
    index.refresh()
    total, first = index.page(0, 2)
    _, rest = index.page(2, 10)
    assert total == 5
    assert [m.subject for m in first + rest] == ["m4", "m3", "m2", "m1", "m0"]
    assert {m.user for m in first + rest} == {"alice", "bob"}


def test_an_unchanged_store_keeps_its_generation(tmp_path: Path) -> None:
    box = Maildir(tmp_path / "demo")
    box.deliver(_raw("one"))
    index = MailIndex(tmp_path)
    index.refresh()
    generation = index.generation
    index.refresh()
    # A changed listing would bump the generation; an unchanged store keeps it.
    assert index.generation == generation


def test_encoded_headers_and_body_search(tmp_path: Path) -> None:
    box = Maildir(tmp_path / "demo")
    box.deliver(_raw("=?utf-8?b?w5xiZXJzaWNodA==?=", body="Zm9vYmFyIHNlY3JldA==\r\n"))
    raw = (
        b"From: x@example.test\r\nSubject: qp\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\nhidden =\r\nneedle here\r\n"
    )
    box.deliver(raw)
    index = MailIndex(tmp_path)
    index.refresh()
    assert [m.subject for m in index.page(0, 10)[1]] == ["qp", "Übersicht"]
    assert [m.subject for m in index.search("needle", 0, 10)[1]] == ["qp"]
    assert index.search("subject:übersicht", 0, 10)[0] == 1
    assert index.search("nothing-like-this", 0, 10)[0] == 0


def test_query_parsing() -> None:
    q = Query.parse('from:Alice to:bob subject:"weekly report" hello is:unread')
    assert q.sender == ("alice",)
    assert q.to == ("bob",)
    assert q.subject == ("weekly report",)
    assert q.words == ("hello",)
    assert q.read is False
    assert Query.parse('unbalanced "quote').words == ("unbalanced", '"quote')


def test_an_arrival_older_than_the_newest_is_sorted_into_place(tmp_path: Path) -> None:
    import os

    box = Maildir(tmp_path / "demo")
    index = MailIndex(tmp_path)
    for n in range(3):
        box.deliver(_raw(f"m{n}"))
        index.refresh()  # one arrival per refresh: each goes on top
    key = box.deliver(_raw("from the past"))
    os.utime(box.new / key, (1_000_000_000, 1_000_000_000))  # e.g. moved in by another tool
    box.deliver(_raw("newest"))
    index.refresh()
    assert [m.subject for m in index.page(0, 10)[1]] == [
        "newest",
        "m2",
        "m1",
        "m0",
        "from the past",
    ]
    assert index.unread == 5
    index.set_read(index.page(0, 1)[1][0].id, True)
    assert index.unread == 4
