"""The table of names a sweep uses, kept between runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from portkit.registry import default_registry
from portkit.scan import _names
from portkit.scan._names import expected_names, load_table, store_table

SRC = str(Path(__file__).resolve().parents[2] / "src")


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PORTKIT_CACHE_DIR", str(tmp_path))
    return tmp_path


def test_kept_table_round_trips(cache_dir: Path) -> None:
    assert load_table("tcp") is None  # nothing kept yet
    table: list[str | None] = [None] * 65536
    table[22], table[443], table[65535] = "ssh", "https", "last"
    store_table("tcp", table)
    assert load_table("tcp") == table
    assert load_table("udp") is None  # per transport
    (kept,) = cache_dir.glob("scan-names-tcp-*.txt")
    assert "ssh" in kept.read_text(encoding="utf-8")


def test_a_registry_update_makes_the_kept_table_stale(cache_dir: Path) -> None:
    table: list[str | None] = [None] * 65536
    table[80] = "http"
    store_table("tcp", table)
    # `portkit registry update` writes the live registry next to it: another key.
    (cache_dir / "services.tsv").write_text("changed\n", encoding="utf-8")
    assert load_table("tcp") is None
    store_table("tcp", table)
    assert load_table("tcp") == table
    assert len(list(cache_dir.glob("scan-names-tcp-*.txt"))) == 1  # the old one is gone


@pytest.mark.parametrize(
    "damage",
    [
        lambda text: text[: len(text) // 2],  # cut short
        lambda text: text.replace("\t", " ", 1),  # a bad line
        lambda text: "something else\n" + text,  # not ours
        lambda text: text.replace("80\t", "99999\t"),  # a port out of range
    ],
    ids=["cut-short", "bad-line", "foreign", "bad-port"],
)
def test_a_damaged_table_is_not_used(cache_dir: Path, damage: object) -> None:
    table: list[str | None] = [None] * 65536
    table[80] = "http"
    store_table("tcp", table)
    (kept,) = cache_dir.glob("scan-names-tcp-*.txt")
    assert callable(damage)
    kept.write_text(damage(kept.read_text(encoding="utf-8")), encoding="utf-8")
    assert load_table("tcp") is None


def test_unwritable_cache_is_quietly_skipped(cache_dir: Path) -> None:
    blocker = cache_dir / "file"
    blocker.write_text("", encoding="utf-8")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PORTKIT_CACHE_DIR", str(blocker / "sub"))  # a file in the way
        store_table("tcp", [None] * 65536)
        assert load_table("tcp") is None


def test_expected_names_from_the_kept_table_match_the_registry(cache_dir: Path) -> None:
    built = expected_names("tcp")  # builds and keeps it
    assert list(cache_dir.glob("scan-names-tcp-*.txt"))
    kept = expected_names("tcp")  # read back
    assert kept == built
    registry = default_registry()
    for port in (1, 22, 80, 443, 993, 3306, 8080, 27017, 40001, 65000):
        assert kept[port] == registry.service_name(port, "tcp")
    # A few ports, with the registry loaded: asked directly, same answers.
    few = expected_names("tcp", [22, 80, 12345])
    assert [few[p] for p in (22, 80, 12345)] == [built[p] for p in (22, 80, 12345)]


def test_table_key_covers_the_version(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = _names._table_path("tcp")
    monkeypatch.setattr("portkit._version.__version__", "0.0.0-other")
    assert _names._table_path("tcp") != first


def test_a_few_ports_are_named_by_the_registry_not_the_kept_table(cache_dir: Path) -> None:
    # A kept table that disagrees with the registry shows which one answered; a fresh
    # process, so that the registry is not loaded yet (as at a scan's start).
    table: list[str | None] = [None] * 65536
    table[22] = "from-the-kept-table"
    store_table("tcp", table)
    code = (
        "from portkit.scan._names import expected_names\n"
        "print(expected_names('tcp', [22])[22], expected_names('tcp')[22])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": SRC, "PORTKIT_CACHE_DIR": str(cache_dir)},
    )
    # A one-port scan asks the registry; a sweep reads the kept table.
    assert done.stdout.split() == ["ssh", "from-the-kept-table"]
