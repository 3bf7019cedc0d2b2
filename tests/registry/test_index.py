"""The compact index a lookup loads instead of parsing the whole data file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from portkit.registry import Service, cache_path, load_registry
from portkit.registry._datafile import dump


def _write(services: list[Service], *, source: str = "test") -> Path:
    path = cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join(line + "\n" for line in dump(services, source=source, date="2026-01-01")),
        encoding="utf-8",
    )
    return path


def _entry(
    name: str, port: int, port_end: int | None = None, aliases: tuple[str, ...] = ()
) -> Service:
    return Service(
        name=name,
        port=port,
        port_end=port if port_end is None else port_end,
        transport="tcp",
        description=f"{name} service",
        aliases=aliases,
    )


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTKIT_CACHE_DIR", str(tmp_path / "cache"))


def test_the_index_answers_what_parsing_answers() -> None:
    fresh = load_registry(use_cache=False)  # builds and saves the shipped data's index
    assert (cache_path().parent / "shipped.idx").is_file()
    indexed = load_registry(use_cache=False)  # reads it back
    assert len(indexed) == len(fresh) > 10000
    for query in ("443", "6010", "20-25", "53/udp", "imap", "http", "x11"):
        assert indexed.lookup(query) == fresh.lookup(query)
    assert list(indexed) == list(fresh)
    assert indexed.info == fresh.info


def test_a_changed_data_file_is_indexed_again() -> None:
    path = _write([_entry("alpha", 4001), _entry("span", 5000, 5009)])
    assert load_registry().service_name(4001) == "alpha"
    assert load_registry().service_name(5005) == "span"
    _write([_entry("beta", 4001, aliases=("b",)), _entry("gamma", 4002)])
    os.utime(path, ns=(1, 1))  # a different mtime even on a coarse clock
    registry = load_registry()
    assert registry.service_name(4001) == "beta"
    assert registry.service_name(4002) == "gamma"
    assert registry.service_name(5005) is None
    assert [s.port for s in registry.by_name("b")] == [4001]
    assert registry.info.entries == 2


def test_a_damaged_index_is_rebuilt(tmp_path: Path) -> None:
    _write([_entry("alpha", 4001)])
    load_registry()
    index = cache_path().parent / "services.idx"
    index.write_bytes(index.read_bytes()[:50])
    assert load_registry().service_name(4001) == "alpha"
    index.write_bytes(b"not marshal data")
    assert load_registry().service_name(4001) == "alpha"
    assert len(index.read_bytes()) > 50  # written again


def test_a_cache_that_cannot_be_written_still_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("PORTKIT_CACHE_DIR", str(blocker / "cache"))  # even root cannot
    registry = load_registry()
    assert registry.service_name(443) == "https"
    assert registry.by_name("imaps")[0].port == 993


def test_entries_after_non_ascii_text_are_read_whole() -> None:
    # The index keeps byte offsets into the UTF-8 file: a multi-byte description before an
    # entry must not shift where that entry's line is read from.
    first = Service(
        name="café", port=4001, port_end=4001, transport="tcp", description="Ünïcödé ✓ 名前"
    )
    _write([first, _entry("alpha", 4002), _entry("omega", 4003)])
    for _ in range(2):  # built, then read back from the saved index
        registry = load_registry()
        assert [s.name for s in registry.by_port(4002)] == ["alpha"]
        assert registry.by_port(4001)[0].description == "Ünïcödé ✓ 名前"
        assert registry.service_name(4003) == "omega"


def test_port_lookups_agree_with_a_registry_built_in_memory() -> None:
    from portkit.registry import Registry

    indexed = load_registry(use_cache=False)
    load_registry(use_cache=False)  # the second load reads the saved index
    indexed = load_registry(use_cache=False)
    built = Registry(list(indexed), info=indexed.info)
    for port in (0, 1, 22, 80, 443, 1023, 5000, 5004, 6000, 6063, 8080, 49151, 65535):
        assert indexed.by_port(port) == built.by_port(port)
        assert indexed.service_name(port, "udp") == built.service_name(port, "udp")
    for low, high, transport in ((6000, 6100, None), (1, 30, "udp"), (443, 443, "tcp")):
        expected = [
            s
            for s in indexed
            if s.port is not None
            and s.port <= high
            and (s.port_end or s.port) >= low
            and transport in (None, s.transport)
        ]
        found = indexed.in_range(low, high, transport)
        assert len(found) == len(expected) > 0
        assert sorted(map(repr, found)) == sorted(map(repr, expected))
    assert indexed.in_range(70000, 80000) == []


def test_an_index_whose_arrays_disagree_is_rebuilt() -> None:
    import marshal

    _write([_entry("alpha", 4001), _entry("beta", 4002)])
    load_registry()
    index = cache_path().parent / "services.idx"
    saved = list(marshal.loads(index.read_bytes()))
    saved[5] = saved[5][:-4]  # the offsets array one short
    index.write_bytes(marshal.dumps(tuple(saved)))
    assert load_registry().service_name(4002) == "beta"
