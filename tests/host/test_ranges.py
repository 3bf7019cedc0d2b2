"""Range header decisions (RFC 9110 section 14), including hostile input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portkit.host.apps._ranges import (
    IGNORE,
    MAX_RANGES,
    UNSATISFIABLE,
    ByteRange,
    RangeVerdict,
    parse_range,
)


def spans(verdict: object) -> list[tuple[int, int]]:
    assert isinstance(verdict, tuple), verdict
    return [(r.first, r.last) for r in verdict]


@pytest.mark.parametrize(
    ("header", "length", "expected"),
    [
        ("bytes=0-99", 1000, [(0, 99)]),
        ("bytes=500-", 1000, [(500, 999)]),
        ("bytes=-100", 1000, [(900, 999)]),
        ("bytes=-5000", 1000, [(0, 999)]),  # suffix longer than the file: all of it
        ("bytes=990-5000", 1000, [(990, 999)]),  # last-pos clipped (section 14.1.2)
        ("BYTES = 0-0".replace(" = ", "="), 10, [(0, 0)]),  # unit is case-insensitive
        ("bytes=0-0, -1", 1000, [(0, 0), (999, 999)]),
        ("bytes=500-600,0-10", 10_000, [(0, 10), (500, 600)]),  # sorted
        ("bytes=0-10,5-20", 1000, [(0, 20)]),  # overlapping: coalesced
        ("bytes=0-10,20-30", 1000, [(0, 30)]),  # gap below a part's overhead: coalesced
        ("bytes=0-10,2000-,", 10_000, [(0, 10), (2000, 9999)]),  # empty element ignored
        ("bytes=2000-3000,0-1", 1000, [(0, 1)]),  # the unsatisfiable one dropped
    ],
)
def test_satisfiable(header: str, length: int, expected: list[tuple[int, int]]) -> None:
    assert spans(parse_range(header, length)) == expected


@pytest.mark.parametrize(
    "header",
    [
        "items=0-1",  # unknown unit: MUST be ignored (section 14.2)
        "bytes=5-2",  # last < first: invalid
        "bytes=abc",
        "bytes=",
        "bytes=-",
        "bytes=1-2-3",
        "bytes 0-1",
        "bytes=0x10-20",
        "bytes=" + ",".join(f"{i * 200}-{i * 200 + 1}" for i in range(MAX_RANGES + 1)),
        "bytes=" + "0" * 5000 + "-1",  # longer than we look at
    ],
)
def test_ignored(header: str) -> None:
    assert parse_range(header, 1000) is IGNORE


@pytest.mark.parametrize(
    "header", ["bytes=1000-", "bytes=5000-6000", "bytes=-0", "bytes=1000-,2000-"]
)
def test_unsatisfiable(header: str) -> None:
    assert parse_range(header, 1000) is UNSATISFIABLE


def test_empty_representation_is_served_whole() -> None:
    assert parse_range("bytes=0-10", 0) is IGNORE


def test_content_range_text() -> None:
    assert ByteRange(first=0, last=9, length=100).content_range() == "bytes 0-9/100"


@given(st.text(max_size=200), st.integers(min_value=0, max_value=10**12))
def test_arbitrary_text_never_raises_and_stays_in_bounds(header: str, length: int) -> None:
    verdict = parse_range(header, length)
    if isinstance(verdict, RangeVerdict):
        return
    assert verdict
    previous_end = -1
    for r in verdict:
        assert 0 <= r.first <= r.last < length
        assert r.first > previous_end  # sorted, disjoint
        previous_end = r.last


@given(
    st.lists(
        st.tuples(st.integers(0, 5000), st.integers(0, 5000)).map(sorted),
        min_size=1,
        max_size=20,
    ),
    st.integers(min_value=1, max_value=6000),
)
def test_every_requested_satisfiable_byte_is_covered(pairs: list[list[int]], length: int) -> None:
    header = "bytes=" + ",".join(f"{a}-{b}" for a, b in pairs)
    verdict = parse_range(header, length)
    wanted = {i for a, b in pairs for i in range(a, min(b, length - 1) + 1) if a < length}
    if not wanted:
        assert verdict is UNSATISFIABLE
        return
    covered = {i for r in spans(verdict) for i in range(r[0], r[1] + 1)}
    assert wanted <= covered
    assert covered <= set(range(length))
