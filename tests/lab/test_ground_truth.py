"""The lab's ground truth: well formed, and versions matched as a release series."""

from __future__ import annotations

import dataclasses

import pytest

from tests._lab import load_ground_truth

TRUTH = load_ground_truth()


def test_every_row_is_complete() -> None:
    assert len({(r.port, r.transport) for r in TRUTH}) == len(TRUTH)
    for row in TRUTH:
        assert row.service, row
        assert row.product, row
        assert not row.version or row.announced, row  # a version is only read from the wire


@pytest.mark.parametrize(
    ("recorded", "found", "matches"),
    [
        ("1.22.1", "1.22.1", True),
        ("1.22.1", "1.22.4", True),  # a Debian point release
        ("1.22.1", "1.22.10", True),
        ("1.22.1", "1.24.0", False),  # a new series
        ("1.22.1", "1.22", False),
        ("1.22.1", "1.22.1-extra", False),
        ("1.22.1", None, False),
        ("9.2p1", "9.2p3", True),
        ("9.2p1", "9.3p1", False),
        ("2.90", "2.91", True),
        ("2.90", "3.90", False),
        ("", None, True),  # nothing recorded: nothing to match
        ("", "1.0", True),
    ],
)
def test_version_matches_the_release_series(
    recorded: str, found: str | None, matches: bool
) -> None:
    row = dataclasses.replace(TRUTH[0], version=recorded)
    assert row.version_matches(found) is matches
