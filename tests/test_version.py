"""The version is written once and the changelog has a section for it."""

from __future__ import annotations

import re
from pathlib import Path

import portkit

CHANGELOG = Path(__file__).resolve().parents[1] / "CHANGELOG.md"


def test_the_changelog_has_a_section_for_this_version() -> None:
    versions = re.findall(r"^## \[(\d+\.\d+\.\d+)\]", CHANGELOG.read_text(encoding="utf-8"), re.M)
    # The newest released section is the version the package carries (CONTRIBUTING.md,
    # "Versions and releases"): a release moves both together.
    assert versions, "CHANGELOG.md has no version section"
    assert versions[0] == portkit.__version__


def test_the_changelog_keeps_an_unreleased_section_first() -> None:
    headings = re.findall(r"^## \[([^\]]+)\]", CHANGELOG.read_text(encoding="utf-8"), re.M)
    assert headings[0] == "Unreleased"
