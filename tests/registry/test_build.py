"""The import pipeline: IANA rows → entries → data file, and the real IANA file."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portkit import RegistryError, RegistryFileError
from portkit.registry._build import RawRow, apply_conventions, dump, group_rows, load_lines
from portkit.registry._iana import import_csv_text, parse_csv

FIXTURE = Path(__file__).with_name("fixtures.csv")
# Real records of the IANA registry, unchanged (tests/data/iana/README.md says which).
REAL_CSV = Path(__file__).resolve().parents[1] / "data" / "iana" / "service-names-port-numbers.csv"


def row(name: str, port: int | None, transport: str | None, description: str) -> RawRow:
    return RawRow(name=name, port=port, port_end=port, transport=transport, description=description)


def test_rows_with_one_description_are_one_service() -> None:
    services = group_rows(
        [
            row("http", 80, "tcp", "World Wide Web HTTP"),
            row("www", 80, "tcp", "World Wide Web HTTP"),
            row("", 81, "tcp", "Unassigned"),
            row("other", 80, "tcp", "Something else"),
        ]
    )
    assert [(s.name, s.aliases) for s in services] == [("http", ("www",)), ("other", ())]


def test_unknown_transport_is_an_error() -> None:
    with pytest.raises(RegistryError, match="unknown transport 'quic'"):
        group_rows([row("x", 1, "quic", "x")])


def test_conventions_make_http_primary_and_fill_gaps() -> None:
    services = apply_conventions(
        group_rows([row("www-http", 80, "tcp", "WWW"), row("http", 80, "tcp", "WWW")])
    )
    http = next(s for s in services if s.port == 80 and s.transport == "tcp")
    assert (http.name, http.aliases) == ("http", ("www-http",))
    assert http.plain == "World Wide Web (HTTP)"
    # A conventional name the data lacks is added first for its port; nothing is renamed.
    alone = apply_conventions(group_rows([row("www-http", 80, "tcp", "WWW")]))
    assert [s.name for s in alone if s.port == 80] == ["http", "www-http"]
    # Conventional entries missing from the input are added.
    assert any(s.name == "imaps" and s.port == 993 for s in services)


def test_data_file_round_trip() -> None:
    services = apply_conventions(group_rows(parse_csv(FIXTURE.read_text())))
    header, loaded = load_lines(dump(services, source="fixture\twith tab", date="2026-01-01"))
    assert loaded == services
    assert header == {"source": "fixture with tab", "date": "2026-01-01"}


def test_corrupt_data_file_names_the_line() -> None:
    with pytest.raises(RegistryError, match="line 2 has 2 fields"):
        load_lines(["# source: x", "http\t80"])


def test_fixture_csv_handles_what_the_real_file_contains() -> None:
    services = import_csv_text(FIXTURE.read_text())
    by_name = {s.name: s for s in services if s.transport != "udp"}
    assert by_name["http"].aliases == ("www", "www-http")  # three rows, one service
    assert (by_name["x11"].port, by_name["x11"].port_end) == (6000, 6063)  # a range
    assert by_name["airplay"].port is None  # name-only, no transport
    assert by_name["ssh"].plain  # conventions applied
    assert "fixture-only" in by_name  # multi-line quoted notes did not derail the reader


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a,b,c\n1,2,3\n", "missing column"),
        (FIXTURE.read_text().replace(",80,tcp,World", ",80-70,tcp,World", 1), "line 5"),
        (FIXTURE.read_text().replace("http,80", "web,80"), "no http entry"),
        ("Service Name,Port Number,Transport Protocol,Description\nx,1,quic,y\n", "quic"),
    ],
)
def test_bad_csv_is_a_file_error(text: str, message: str) -> None:
    with pytest.raises(RegistryFileError, match=message):
        import_csv_text(text)


@given(st.text(max_size=300))
def test_arbitrary_text_raises_only_our_error(text: str) -> None:
    with contextlib.suppress(RegistryFileError):
        import_csv_text(text)


def test_real_iana_records() -> None:
    services = import_csv_text(REAL_CSV.read_text(encoding="utf-8"))
    # 382 records: the names of one port and transport merge; the "usually" notes of
    # ports the sample does not register (COMMON_USE) are added as unnamed entries.
    assert len(services) == 362
    http = next(s for s in services if s.port == 80 and s.transport == "tcp")
    assert (http.name, http.aliases) == ("http", ("www", "www-http"))
    x11 = next(s for s in services if s.name == "x11" and s.transport == "tcp")
    assert (x11.port, x11.port_end) == (6000, 6063)
    assert sum(1 for s in services if s.port is None) == 120
    # "Reserved" and "Unassigned" records name no service: none is imported.
    assert not [s for s in services if s.port in (0, 4)]
